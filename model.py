"""The three models of the series, one per step, all built from ConvBlock.

All three share one skeleton, so the steps differ only in widths and in the
block's switches (batch norm, dropout):

    block 1   two 3x3 convs                      28 -> 24
    trans 1   max-pool 2x2 + 1x1 squeeze         24 -> 12
    block 2   three 3x3 convs                    12 -> 6
    head      global average pool + 1x1 -> 10    6 -> 1

Every conv is unpadded, so the receptive field grows 3, 5 | 6 | 10, 14, 18 and
the global average pool over the last 6x6 map (jump 2) brings it to 28: the
output sees the whole digit.  Each model returns log-probabilities (N, 10).
"""
import torch.nn as nn


class ConvBlock(nn.Sequential):
    """conv -> [batch norm] -> ReLU -> [channel dropout]: the one block every model is built from."""

    def __init__(self, c_in, c_out, kernel_size=3, bn=False, dropout=0.0):
        layers = [nn.Conv2d(c_in, c_out, kernel_size, bias=not bn)]  # BN has its own shift
        if bn:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))  # whole channels: cheap on CPU, strong on small maps
        super().__init__(*layers)


class Model_1(nn.Sequential):
    """Step 1, the skeleton: wide, no batch norm, no dropout.

    Parameters: 20,018.  Receptive field: 28.
    """

    def __init__(self):
        super().__init__(
            ConvBlock(1, 16),                 # (N, 16, 26, 26)  RF 3
            ConvBlock(16, 32),                # (N, 32, 24, 24)  RF 5
            nn.MaxPool2d(2),                  # (N, 32, 12, 12)  RF 6
            ConvBlock(32, 16, kernel_size=1), # (N, 16, 12, 12)  squeeze channels
            ConvBlock(16, 24),                # (N, 24, 10, 10)  RF 10
            ConvBlock(24, 24),                # (N, 24, 8, 8)    RF 14
            ConvBlock(24, 32),                # (N, 32, 6, 6)    RF 18
            nn.AdaptiveAvgPool2d(1),          # (N, 32, 1, 1)    RF 28
            nn.Conv2d(32, 10, 1),             # (N, 10, 1, 1)
            nn.Flatten(),                     # (N, 10)
            nn.LogSoftmax(dim=1),
        )


class Model_2(nn.Sequential):
    """Step 2, the same skeleton made light: about a third of the widths of Model_1.

    Parameters: 6,130.  Receptive field: 28.
    """

    def __init__(self):
        super().__init__(
            ConvBlock(1, 8),                  # (N, 8, 26, 26)   RF 3
            ConvBlock(8, 12),                 # (N, 12, 24, 24)  RF 5
            nn.MaxPool2d(2),                  # (N, 12, 12, 12)  RF 6
            ConvBlock(12, 8, kernel_size=1),  # (N, 8, 12, 12)
            ConvBlock(8, 12),                 # (N, 12, 10, 10)  RF 10
            ConvBlock(12, 16),                # (N, 16, 8, 8)    RF 14
            ConvBlock(16, 16),                # (N, 16, 6, 6)    RF 18
            nn.AdaptiveAvgPool2d(1),          # (N, 16, 1, 1)    RF 28
            nn.Conv2d(16, 10, 1),             # (N, 10, 1, 1)
            nn.Flatten(),                     # (N, 10)
            nn.LogSoftmax(dim=1),
        )


class Model_3(nn.Sequential):
    """Step 3, Model_2's skeleton with batch norm after every conv and light dropout.

    Parameters: 6,232.  Receptive field: 28.
    """

    def __init__(self, dropout=0.05):
        block = dict(bn=True, dropout=dropout)
        super().__init__(
            ConvBlock(1, 8, **block),                   # (N, 8, 26, 26)   RF 3
            ConvBlock(8, 12, **block),                  # (N, 12, 24, 24)  RF 5
            nn.MaxPool2d(2),                            # (N, 12, 12, 12)  RF 6
            ConvBlock(12, 8, kernel_size=1, **block),   # (N, 8, 12, 12)
            ConvBlock(8, 12, **block),                  # (N, 12, 10, 10)  RF 10
            ConvBlock(12, 16, **block),                 # (N, 16, 8, 8)    RF 14
            ConvBlock(16, 16, bn=True),                 # (N, 16, 6, 6)    RF 18, no dropout before the head
            nn.AdaptiveAvgPool2d(1),                    # (N, 16, 1, 1)    RF 28
            nn.Conv2d(16, 10, 1),                       # (N, 10, 1, 1)
            nn.Flatten(),                               # (N, 10)
            nn.LogSoftmax(dim=1),
        )
