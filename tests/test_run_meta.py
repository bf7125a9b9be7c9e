"""run.json has one writer (bench/store/meta.py): every key it records is listed, a new one is refused."""
import json

import pytest

from bench.store.meta import RUN_KEYS, add_facts, create_meta, read_meta, update_meta
from theory.errors import TheoryError


def test_update_merges_in_place_and_refuses_unlisted_keys(tmp_path):
    create_meta(tmp_path, {"run_id": "r", "ceilings": {}, "host": "h"})
    meta = update_meta(tmp_path, ceilings={"fp32": {}}, remeasured=[])
    assert list(meta) == ["run_id", "ceilings", "host", "remeasured"] and read_meta(tmp_path) == meta
    with pytest.raises(TheoryError, match="no key 'ceiling'"):
        update_meta(tmp_path, ceiling={})
    assert add_facts(tmp_path, {"host": "other", "torch": "2.13"})["host"] == "h"
    assert json.loads((tmp_path / "run.json").read_text())["torch"] == "2.13"
    assert len(set(RUN_KEYS)) == len(RUN_KEYS)
