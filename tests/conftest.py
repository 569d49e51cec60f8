import pytest
import torch
from hypothesis import settings

# The property-based tests draw the same examples on every run, so that CI cannot fail by
# chance; `pytest --hypothesis-profile=explore` draws new ones.
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("deterministic")


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state (NumPy/SciPy draws pass seeds)."""
    torch.manual_seed(0)
