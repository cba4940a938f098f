from __future__ import annotations

from synapsex.contracts.tenant import CreateTenant, ListTenants
from synapsex.runtime import Runtime
from synapsex.runtime.deadletters import dead_letter_from
from synapsex.runtime.envelope import Envelope

from .conftest import json_lines


async def plant_dead_letter(data_dir, message) -> str:
    """Store a dead letter for ``message`` in tenant-service's database, as a crash would."""
    async with Runtime.embedded(data_dir=data_dir, services=["tenant-service"]) as rt:
        envelope = Envelope(
            message, service="tenant-service", reply=None, deadline=None, parent=None, sender=None
        )
        letter = dead_letter_from(envelope, RuntimeError("database was down"))
        await rt._cells["tenant-service"].dead_letters.add(letter)
    return letter.id


async def test_list_show_and_redrive_a_dead_letter(cli, tmp_path):
    letter_id = await plant_dead_letter(tmp_path / "data", CreateTenant(name="Redriven"))

    listed = json_lines(cli("dead-letters", "list", "--service", "tenant-service").stdout)
    assert [(d["id"], d["error"]) for d in listed] == [
        (letter_id, "RuntimeError: database was down")
    ]
    shown = json_lines(cli("dead-letters", "show", letter_id, "--service", "tenant-service").stdout)
    assert shown[0]["payload"]["name"] == "Redriven"

    result = cli("dead-letters", "redrive", letter_id, "--service", "tenant-service")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"redriven": letter_id}]
    assert json_lines(cli("dead-letters", "list", "--service", "tenant-service").stdout) == []

    async with Runtime.embedded(data_dir=tmp_path / "data", services=["tenant-service"]) as rt:
        names = [t.name for t in (await rt.ask(ListTenants())).items]
    assert names == ["Redriven"]


def test_discard_and_unknown_ids(cli):
    result = cli("dead-letters", "discard", "dl_missing", "--service", "tenant-service")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr
