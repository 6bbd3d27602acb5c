"""Model_1..Model_3: shapes, log-probabilities, parameter counts and receptive fields."""
import copy
import re

import pytest
import torch
import torch.nn as nn

import model as models
import utils

MODELS = [models.Model_1, models.Model_2, models.Model_3]


def docstring_number(cls, label):
    match = re.search(label + r":\s*([\d,]+)", cls.__doc__)
    assert match, f"{cls.__name__}'s docstring does not state its {label.lower()}"
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize("cls", MODELS)
def test_output_is_log_probabilities_of_shape_n_by_10(cls):
    torch.manual_seed(0)
    net = cls().eval()
    out = net(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)
    assert (out <= 0).all()


@pytest.mark.parametrize("cls", MODELS)
def test_docstring_states_the_true_parameter_count(cls):
    assert utils.count_params(cls()) == docstring_number(cls, "Parameters")


@pytest.mark.parametrize("cls", MODELS)
def test_docstring_states_the_computed_receptive_field(cls):
    assert utils.receptive_field(cls())[-1]["rf"] == docstring_number(cls, "Receptive field")


def test_model_3_has_fewer_than_8000_trainable_parameters():
    assert utils.count_params(models.Model_3()) < 8000


def test_model_2_and_3_share_one_skeleton():
    shape = lambda net: [r["output"][1:] + [r["kernel"], r["stride"]] for r in utils.receptive_field(net)]
    assert shape(models.Model_2()) == shape(models.Model_3()) == shape(models.Model_1())


def test_only_step_3_uses_batch_norm_and_dropout_is_its_switch():
    kinds = lambda net: {type(m) for m in net.modules()}
    for net in (models.Model_1(), models.Model_2()):
        assert not kinds(net) & {nn.BatchNorm2d, nn.Dropout, nn.Dropout2d}
    assert nn.BatchNorm2d in kinds(models.Model_3())
    dropped = [m.p for m in models.Model_3().modules() if isinstance(m, nn.Dropout)]
    assert dropped == [0.05] * 3, "after the 1x1 squeeze and the first two convs of block 2"
    assert nn.Dropout not in kinds(models.Model_3(dropout=0))


def test_batch_norm_follows_every_conv_of_model_3_but_the_head():
    convs = [m for m in models.Model_3().modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in models.Model_3().modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == len(convs) - 1 and convs[-1].bias is not None


def probe(net):
    """A copy whose every path carries gradient: positive weights, no biases, average pools."""
    net = copy.deepcopy(net).eval()
    for name, m in list(net.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(m, child_name, nn.AvgPool2d(child.kernel_size, child.stride))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.uniform_(0.1, 1.0)
                if m.bias is not None:
                    m.bias.zero_()
    return net


def input_extent(x):
    """Height and width of the box of input pixels with a non-zero gradient."""
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    cols = x.grad[0, 0].abs().sum(0).nonzero()
    return rows.max().item() - rows.min().item() + 1, cols.max().item() - cols.min().item() + 1


@pytest.mark.parametrize("cls", MODELS)
def test_receptive_field_table_matches_gradient_reach_layer_by_layer(cls):
    net = probe(cls())
    rows = utils.receptive_field(net)
    kinds = (nn.Conv2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
    layers = [m for m in net.modules() if isinstance(m, kinds)]
    assert len(layers) == len(rows)
    first_gap = next((i for i, r in enumerate(rows) if r["layer"].startswith("gap")), len(rows))
    for i, (row, layer) in enumerate(zip(rows, layers)):
        # before the global pool a large input shows the full field; from it on, the 28x28 digit
        size = 64 if i < first_gap else 28
        captured = []
        hook = layer.register_forward_hook(lambda m, i, o: captured.append(o))
        x = torch.ones(1, 1, size, size, requires_grad=True)
        net(x)
        hook.remove()
        out = captured[0]
        out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
        expected = min(row["rf"], size)
        assert input_extent(x) == (expected, expected), f"{cls.__name__} {row['layer']}"
