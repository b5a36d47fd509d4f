import os
import sys

import pytest

# Make tests/support importable as `support` from every test module.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch intra-op thread for a module (restored after): the test models are tiny, and
    on a small shared CPU two spinning intra-op threads can make each call ~100× slower."""
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
