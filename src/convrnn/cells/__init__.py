"""Recurrent cells, one file per family. All follow ``out, state = cell(x, state=None)``."""
from .base import ConvRNNCell, map_state
from .elman import ElmanCell
from .gru import ConvGRUCell
from .hgru import HGRUCell
from .locrnn import LocRNNCell
from .lstm import ConvLSTMCell
from .residual import ResidualRecurrentCell
from .rgc import ReciprocalGatedCell

__all__ = ["ConvRNNCell", "map_state", "ElmanCell", "ConvGRUCell", "ConvLSTMCell", "ReciprocalGatedCell",
           "HGRUCell", "LocRNNCell", "ResidualRecurrentCell"]
