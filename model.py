"""The three models of the series, one per step, all built from ConvBlock.

All three share one skeleton, so the steps differ only in widths and in the
block's switches (batch norm, dropout):

    block 1   three 3x3 convs                    28 -> 22
    trans 1   max-pool 2x2 + 1x1 squeeze         22 -> 11
    block 2   three 3x3 convs                    11 -> 5
    head      global average pool + 1x1 -> 10    5 -> 1

Every conv is unpadded, so the receptive field grows 3, 5, 7 | 8 | 12, 16, 20
and the global average pool over the last 5x5 map (jump 2) brings it to 28:
the output sees the whole digit.  The three convs before the pool work on the
largest maps, so they take most of the compute, not most of the parameters.
The head's 1x1 conv has a
bias and no batch norm or ReLU: it gives the class scores.  Each model returns
log-probabilities (N, 10).
"""
import torch.nn as nn


class ConvBlock(nn.Sequential):
    """conv -> [batch norm] -> ReLU -> [dropout]: the one block every model is built from."""

    def __init__(self, c_in, c_out, kernel_size=3, bn=False, dropout=0.0, padding=0):
        conv = nn.Conv2d(c_in, c_out, kernel_size, padding=padding, bias=not bn)  # BN has its own shift
        if not bn:
            # He initialisation keeps the signal's scale through a deep plain ReLU stack;
            # PyTorch's default (variance 1 / (3 fan_in)) shrinks it at every layer.
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        layers = [conv]
        if bn:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class Model_1(nn.Sequential):
    """Step 1, the skeleton: wide, no batch norm, no dropout.

    Parameters: 20,722.  Receptive field: 28.
    """

    def __init__(self):
        super().__init__(
            ConvBlock(1, 16),                 # (N, 16, 26, 26)  RF 3
            ConvBlock(16, 16),                # (N, 16, 24, 24)  RF 5
            ConvBlock(16, 32),                # (N, 32, 22, 22)  RF 7
            nn.MaxPool2d(2),                  # (N, 32, 11, 11)  RF 8
            ConvBlock(32, 16, kernel_size=1), # (N, 16, 11, 11)  squeeze channels
            ConvBlock(16, 16),                # (N, 16, 9, 9)    RF 12
            ConvBlock(16, 24),                # (N, 24, 7, 7)    RF 16
            ConvBlock(24, 32),                # (N, 32, 5, 5)    RF 20
            nn.AdaptiveAvgPool2d(1),          # (N, 32, 1, 1)    RF 28
            nn.Conv2d(32, 10, 1),             # (N, 10, 1, 1)
            nn.Flatten(),                     # (N, 10)
            nn.LogSoftmax(dim=1),
        )


class Model_2(nn.Sequential):
    """Step 2, the same skeleton made light: about half the widths of Model_1.

    Parameters: 7,636.  Receptive field: 28.
    """

    def __init__(self):
        super().__init__(
            ConvBlock(1, 8),                  # (N, 8, 26, 26)   RF 3
            ConvBlock(8, 12),                 # (N, 12, 24, 24)  RF 5
            ConvBlock(12, 16),                # (N, 16, 22, 22)  RF 7
            nn.MaxPool2d(2),                  # (N, 16, 11, 11)  RF 8
            ConvBlock(16, 8, kernel_size=1),  # (N, 8, 11, 11)
            ConvBlock(8, 12),                 # (N, 12, 9, 9)    RF 12
            ConvBlock(12, 16),                # (N, 16, 7, 7)    RF 16
            ConvBlock(16, 14),                # (N, 14, 5, 5)    RF 20
            nn.AdaptiveAvgPool2d(1),          # (N, 14, 1, 1)    RF 28
            nn.Conv2d(14, 10, 1),             # (N, 10, 1, 1)
            nn.Flatten(),                     # (N, 10)
            nn.LogSoftmax(dim=1),
        )


class Model_3(nn.Sequential):
    """Step 3, Model_2 with batch norm after every conv but the head's, and light dropout
    after the 1x1 squeeze and the first two convs of block 2 (the small maps, where it is
    cheap); dropout=0 leaves it out.

    Parameters: 7,722.  Receptive field: 28.
    """

    def __init__(self, dropout=0.05):
        bn = dict(bn=True)
        drop = dict(bn=True, dropout=dropout)
        super().__init__(
            ConvBlock(1, 8, **bn),                      # (N, 8, 26, 26)   RF 3
            ConvBlock(8, 12, **bn),                     # (N, 12, 24, 24)  RF 5
            ConvBlock(12, 16, **bn),                    # (N, 16, 22, 22)  RF 7
            nn.MaxPool2d(2),                            # (N, 16, 11, 11)  RF 8
            ConvBlock(16, 8, kernel_size=1, **drop),    # (N, 8, 11, 11)
            ConvBlock(8, 12, **drop),                   # (N, 12, 9, 9)    RF 12
            ConvBlock(12, 16, **drop),                  # (N, 16, 7, 7)    RF 16
            ConvBlock(16, 14, **bn),                    # (N, 14, 5, 5)    RF 20, no dropout before the head
            nn.AdaptiveAvgPool2d(1),                    # (N, 14, 1, 1)    RF 28
            nn.Conv2d(14, 10, 1),                       # (N, 10, 1, 1)
            nn.Flatten(),                               # (N, 10)
            nn.LogSoftmax(dim=1),
        )
