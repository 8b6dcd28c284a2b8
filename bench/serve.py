"""``groups-api serve`` with the bench's app: ``python -m bench.serve [serve options]``.

The product's own command runs unchanged (settings, migrations once, workers, logging); only the app uvicorn
imports in each worker is bench/server.py's, which wraps the product's ``server.asgi`` app.
"""

from __future__ import annotations

import sys

import uvicorn

from server import cli

PRODUCT_APP = "server.asgi:app_from_environment"
BENCH_APP = "bench.server:app_from_environment"


def main(argv: list[str] | None = None) -> int:
    run = uvicorn.run

    def run_bench_app(app, **options):
        if app != PRODUCT_APP:
            raise RuntimeError(f"groups-api serve runs {app!r}, not {PRODUCT_APP!r}: update bench/serve.py")
        return run(BENCH_APP, **options)

    uvicorn.run = run_bench_app
    return cli.main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
