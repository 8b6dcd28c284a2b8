async def test_sign_up_then_viewer(api):
    signed = await api.sign_up()
    data = await api.ok(
        "{ viewer { id name role email } practice { slug kind owner { name } } }", token=signed["accessToken"]
    )
    assert data["viewer"]["role"] == "OWNER"
    assert data["viewer"]["email"] == "owner@example.com"
    assert data["practice"] == {"slug": "calm-minds", "kind": "SOLO", "owner": {"name": "Olive Owner"}}
