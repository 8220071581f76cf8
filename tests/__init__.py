"""The test suite: one folder per part of the code (see CONTRIBUTING.md, Tests)."""

import pytest

# The helpers in tests.support assert too: pytest rewrites their asserts, as it does the tests'
# (this runs before conftest.py imports any of them).
pytest.register_assert_rewrite("tests.support")
