import pytest


@pytest.fixture(autouse=True, scope="module")
def _diffusion_tests_one_thread(torch_one_thread):
    """Every diffusion test module runs torch on one thread (see tests/conftest.py)."""
    yield
