"""set_seed, get_device, the train/test loops and their errors."""
import pytest
import torch

import model as models
import utils


def short_run(small_loaders, seed=7, epochs=1, **kw):
    train, test = small_loaders
    train.generator.manual_seed(seed)
    utils.set_seed(seed)
    net = models.Model_3()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    return net, utils.fit(net, train, test, opt, epochs=epochs, progress=False, log=lambda s: None, **kw)


def test_same_seed_gives_identical_metrics(small_loaders):
    _, first = short_run(small_loaders)
    _, second = short_run(small_loaders)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert first[key] == second[key]


def test_training_learns_something(small_loaders):
    _, history = short_run(small_loaders, epochs=2)
    assert history["train_loss"][1] < history["train_loss"][0]
    assert history["train_acc"][1] > 30  # chance is 10%


def test_history_has_one_entry_per_epoch_and_prints_one_line_each(small_loaders):
    lines = []
    train, test = small_loaders
    net = models.Model_2()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    history = utils.fit(net, train, test, opt, epochs=2, progress=False, log=lines.append)
    assert set(history) == set(utils.HISTORY_KEYS)
    assert all(len(v) == 2 for v in history.values())
    assert history["epoch"] == [1, 2]
    assert lines == [utils.epoch_line({k: history[k][i] for k in history}) for i in range(2)]
    assert lines[0].startswith("epoch  1 | lr 0.01000 | train loss")


@pytest.mark.parametrize("epochs", [0, -3, 2.5])
def test_epochs_must_be_a_positive_whole_number(small_loaders, epochs):
    train, test = small_loaders
    net = models.Model_2()
    with pytest.raises(ValueError, match="epochs must be a positive whole number"):
        utils.fit(net, train, test, torch.optim.SGD(net.parameters(), lr=0.01), epochs=epochs)


def test_nan_loss_stops_training_naming_epoch_and_batch(small_loaders):
    train, test = small_loaders
    net = models.Model_2()
    opt = torch.optim.SGD(net.parameters(), lr=1e30)  # the first step blows the weights up
    with pytest.raises(utils.TrainingDivergedError, match=r"epoch 1, batch 2 of 8"):
        utils.fit(net, train, test, opt, epochs=1, progress=False, log=lambda s: None)


def test_one_cycle_steps_per_batch_and_step_lr_per_epoch(small_loaders):
    train, test = small_loaders
    net = models.Model_3()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=2, steps_per_epoch=len(train))
    utils.fit(net, train, test, opt, epochs=2, scheduler=one_cycle, progress=False, log=lambda s: None)
    assert one_cycle.last_epoch == 2 * len(train)

    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    step = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = utils.fit(net, train, test, opt, epochs=2, scheduler=step, progress=False, log=lambda s: None)
    assert history["lr"] == [0.1, 0.05]


def test_plateau_scheduler_is_given_the_test_loss(small_loaders):
    train, test = small_loaders
    net = models.Model_3()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    history = utils.fit(net, train, test, opt, epochs=2, scheduler=plateau, progress=False, log=lambda s: None)
    assert plateau.best == min(history["test_loss"][:2])


def test_ema_weights_are_the_ones_evaluated(small_loaders):
    train, test = small_loaders
    utils.set_seed(0)
    net = models.Model_3()
    ema = utils.make_ema(net, decay=0.9)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    history = utils.fit(net, train, test, opt, epochs=1, ema=ema, progress=False, log=lambda s: None)
    _, ema_acc = utils.evaluate(utils.final_model(net, ema), test)
    assert history["test_acc"][0] == ema_acc


def test_set_seed_repeats_random_draws():
    utils.set_seed(11)
    a = torch.rand(3)
    utils.set_seed(11)
    assert torch.equal(a, torch.rand(3))


def test_auto_device_picks_what_exists():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert utils.get_device("auto").type == expected
    assert utils.get_device("cpu").type == "cpu"


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        utils.get_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_is_an_error_not_a_silent_fallback():
    with pytest.raises(RuntimeError, match="'cuda' was asked for but is not available"):
        utils.get_device("cuda")


def test_ema_warm_up_follows_the_training_from_the_first_steps(small_loaders):
    train, test = small_loaders
    utils.set_seed(0)
    net = models.Model_3()
    start = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    ema = utils.make_ema(net, decay=0.999)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    utils.fit(net, train, test, opt, epochs=1, ema=ema, progress=False, log=lambda s: None)
    now = torch.cat([p.detach().flatten() for p in net.parameters()])
    avg = torch.cat([p.detach().flatten() for p in ema.module.parameters()])
    # a fixed 0.999 average of 8 steps would still be ~99% the random start
    assert (avg - now).norm() < 0.5 * (start - now).norm()


def test_recorded_settings_are_the_ones_the_optimizer_and_scheduler_ran_with(small_loaders):
    train, test = small_loaders
    net = models.Model_3()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    cyc = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=2, steps_per_epoch=len(train),
                                              pct_start=0.25)
    s = utils.run_settings(net, train, opt, cyc, test_loader=test)
    assert s["optimizer"] == "SGD" and s["nesterov"] is True and s["weight_decay"] == 1e-4
    assert s["scheduler"]["name"] == "OneCycleLR" and s["scheduler"]["cycle_momentum"] is True
    assert s["scheduler"]["max_lr"] == 0.1 and s["scheduler"]["pct_start"] == 0.25
    assert s["scheduler"]["total_steps"] == 2 * len(train)
    assert s["momentum"] == opt.param_groups[0]["momentum"] == 0.95, "cycled: it starts at max_momentum"
    assert s["base_momentum"] == 0.85 and s["max_momentum"] == 0.95
    assert s["batch_size"] == 128 and s["test_images"] == 10000 and s["train_images"] == 1024
    assert s["dropout"] == sorted({m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)})

    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    fixed = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=2, steps_per_epoch=len(train),
                                                cycle_momentum=False)
    s = utils.run_settings(net, train, opt, fixed)
    assert s["momentum"] == 0.9 and s["scheduler"]["cycle_momentum"] is False and "max_momentum" not in s
