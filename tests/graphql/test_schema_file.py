from pathlib import Path

from synapsex.graphql import schema_sdl

SCHEMA_FILE = Path(__file__).parents[2] / "schema.graphql"


def test_checked_in_schema_matches_the_code():
    assert SCHEMA_FILE.read_text() == schema_sdl(), (
        "schema.graphql is out of date: run `synapsex schema > schema.graphql`"
    )
