import os

# one BLAS thread: on a small shared machine OpenBLAS's thread pool makes scikit-learn fits 20-100x slower
# (must be set before numpy loads; subprocesses started by the tests inherit it)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

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
