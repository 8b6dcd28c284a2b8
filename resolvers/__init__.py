"""The rules of the product: one module per area. Nothing here imports the schema."""
