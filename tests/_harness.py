"""Shared by the harness tests: run torch on one thread (small problems, shared CPUs)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for the module: small problems run fastest and most steadily so."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
