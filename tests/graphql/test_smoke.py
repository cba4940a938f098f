async def test_me_names_the_caller_and_their_tenant(gateway):
    data = await gateway.acme.data(
        "{ me { role email tenant { name slug plan limits { members storageBytes } } } }"
    )
    assert data["me"]["role"] == "OWNER"
    assert data["me"]["tenant"]["name"] == "Acme"
