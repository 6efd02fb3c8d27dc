"""The "needs shared data" helper: a skip with a reason, a failure under RANKIQA_REQUIRE_SHARED=1."""
from pathlib import Path

import pytest

CHILD_TEST = '''
from pathlib import Path

import _shared


def test_needs_shared_data(monkeypatch):
    monkeypatch.setattr(_shared, "SHARED_DATA", Path("/nonexistent/shared/data"))
    _shared.require_shared("labels")


def test_ordinary_skip_stays_a_skip():
    import pytest
    pytest.skip("an optional extra is missing")
'''


@pytest.mark.parametrize(("value", "failed", "skipped"), [(None, 0, 2), ("0", 0, 2), ("1", 1, 1)])
def test_missing_shared_data_fails_only_when_required(pytester, monkeypatch, value, failed, skipped):
    pytester.makeconftest((Path(__file__).with_name("conftest.py")).read_text())
    pytester.makepyfile(_shared=(Path(__file__).with_name("_shared.py")).read_text())
    pytester.makepyfile(test_child=CHILD_TEST)
    if value is None:
        monkeypatch.delenv("RANKIQA_REQUIRE_SHARED", raising=False)
    else:
        monkeypatch.setenv("RANKIQA_REQUIRE_SHARED", value)
    result = pytester.runpytest_subprocess("-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=failed, skipped=skipped)
    output = result.stdout.str()
    assert "needs the shared development data: /nonexistent/shared/data/labels not found" in output
    if failed:
        assert "RANKIQA_REQUIRE_SHARED=1 but the test could not run" in output
