import random

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: one thread is fastest and deterministic


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
