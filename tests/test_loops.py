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


ONE_CYCLE = dict(epochs=2, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                 weight_decay=1e-4, schedule="onecycle", pct_start=0.25, final_div_factor=100)


def test_one_cycle_and_piecewise_schedules_step_after_every_batch(small_loaders):
    train, test = small_loaders
    net = models.Model_3()
    opt, one_cycle = utils.make_optimizer(net, ONE_CYCLE, len(train))
    utils.fit(net, train, test, opt, epochs=2, scheduler=one_cycle, progress=False, log=lambda s: None)
    assert one_cycle.last_epoch == 2 * len(train)
    assert opt.param_groups[0]["momentum"] == 0.9, "one-cycle leaves the momentum fixed"

    points = [[0, 0.02], [0.5, 0.1], [1, 0.0]]
    recipe = dict(ONE_CYCLE, schedule="piecewise", lr_points=points)
    del recipe["pct_start"], recipe["final_div_factor"]
    opt, piecewise = utils.make_optimizer(net, recipe, len(train))
    history = utils.fit(net, train, test, opt, epochs=2, scheduler=piecewise, progress=False, log=lambda s: None)
    assert history["lr"] == pytest.approx([0.02, 0.1])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_piecewise_lr_is_linear_between_points_and_steps_at_a_repeated_share():
    points = [[0, 0.1], [0.5, 0.1], [0.5, 0.01], [1, 0.0]]
    assert [utils.piecewise_lr(points, s) for s in (0, 0.375, 0.5, 0.625, 0.75, 1)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.0075, 0.005, 0.0])


def test_constant_schedule_has_no_scheduler():
    net = models.Model_2()
    opt, scheduler = utils.make_optimizer(net, dict(epochs=1, batch_size=128, optimizer="sgd", lr=0.01,
                                                    momentum=0.9, nesterov=False, weight_decay=0.0,
                                                    schedule="constant"), 10)
    assert scheduler is None and opt.param_groups[0]["lr"] == 0.01 and not opt.param_groups[0]["nesterov"]


@pytest.mark.parametrize("change, message", [
    (dict(optimizer="rmsprop"), "optimizer must be 'sgd' or 'adam'"),
    (dict(schedule="cosine"), "schedule must be"),
    (dict(pct_start=None), "missing pct_start"),
    (dict(warmup=3), "unknown warmup"),
    (dict(epochs=2.5), "epochs must be a positive whole number"),
    (dict(schedule="piecewise", lr_points=[[0, 0.1], [1, 0.0]]), "unknown pct_start"),
])
def test_a_bad_recipe_is_a_clear_error(change, message):
    recipe = {k: v for k, v in dict(ONE_CYCLE, **change).items() if v is not None}
    with pytest.raises(utils.RecipeError, match=message):
        utils.check_recipe(recipe)


def test_piecewise_points_must_span_the_training_with_lr_as_their_peak():
    recipe = dict(epochs=4, batch_size=128, optimizer="adam", lr=0.01, weight_decay=0.0, schedule="piecewise")
    for points in ([[0, 0.01], [0.9, 0.0]], [[0, 0.01], [0.5, 0.02], [1, 0.0]], [[0, 0.01], [0.6, 0.0], [0.5, 0.0], [1, 0]]):
        with pytest.raises(utils.RecipeError, match="lr_points must run from 0 to 1"):
            utils.check_recipe(dict(recipe, lr_points=points))


def test_ema_weights_are_the_ones_evaluated(small_loaders):
    train, test = small_loaders
    utils.set_seed(0)
    net = models.Model_3()
    ema = utils.make_ema(net, decay=0.9)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    history = utils.fit(net, train, test, opt, epochs=1, ema=ema, progress=False, log=lambda s: None)
    _, ema_acc = utils.evaluate(utils.evaluated_model(net, ema), test)
    assert history["test_acc"][0] == ema_acc
    _, live_acc = utils.evaluate(net, test)  # the live weights are scored beside the average
    assert history["test_acc_live"][0] == live_acc and set(utils.LIVE_KEYS) <= set(history)


def test_scoring_the_live_weights_changes_nothing_of_the_training(small_loaders):
    train, test = small_loaders
    runs = []
    for live in (True, False):
        utils.set_seed(0)
        net = models.Model_3()
        ema = utils.make_ema(net, decay=0.9)
        train.generator.manual_seed(0)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        history = utils.fit(net, train, test, opt, epochs=2, ema=ema if live else None, progress=False,
                            log=lambda s: None)
        runs.append(history["train_loss"])
    assert runs[0] == runs[1]


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


def test_recorded_settings_are_the_recipe_checked_against_what_runs(small_loaders):
    train, test = small_loaders
    net = models.Model_3()
    recipe = dict(ONE_CYCLE, dropout=0.05, ema_decay=0.99)
    opt, cyc = utils.make_optimizer(net, recipe, len(train))
    ema = utils.make_ema(net, 0.99)
    s = utils.run_settings(recipe, net, train, test, opt, cyc, ema)
    assert {k: s[k] for k in recipe} == recipe
    assert s["degrees"] == s["translate"] == s["scale"] == 0.0 and s["channels_last"] is False
    assert s["train_images"] == 1024 and s["test_images"] == 10000 and s["evaluated_on"] == "test set"
    assert s["batch_norm"] is True


@pytest.mark.parametrize("change, word", [
    (dict(lr=0.2), "lr: recipe 0.2, running 0.1"), (dict(momentum=0.95), "momentum"),
    (dict(epochs=3), "epochs"), (dict(final_div_factor=10), "final_div_factor"), (dict(dropout=0.1), "dropout"),
    (dict(batch_size=64), "batch_size"), (dict(degrees=7.0), "degrees"), (dict(ema_decay=0.9), "ema_decay"),
    (dict(channels_last=True), "channels_last"), (dict(nesterov=False), "nesterov")])
def test_a_run_that_does_not_follow_its_recipe_is_named(small_loaders, change, word):
    train, test = small_loaders
    net = models.Model_3()
    opt, cyc = utils.make_optimizer(net, ONE_CYCLE, len(train))
    with pytest.raises(utils.RecipeError, match=word):
        utils.run_settings({**ONE_CYCLE, "dropout": 0.05, **change}, net, train, test, opt, cyc)


def test_a_cycled_momentum_or_a_foreign_scheduler_is_refused(small_loaders):
    train, test = small_loaders
    net = models.Model_3()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    cycled = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=2, steps_per_epoch=len(train))
    with pytest.raises(utils.RecipeError, match="cycles the momentum"):
        utils.run_settings(dict(ONE_CYCLE, dropout=0.05), net, train, test, opt, cycled)
    step = torch.optim.lr_scheduler.StepLR(opt, 1)
    with pytest.raises(utils.RecipeError, match="StepLR is not a schedule of this library"):
        utils.run_settings(dict(ONE_CYCLE, dropout=0.05), net, train, test, opt, step)


def test_channels_last_layout_is_seen_and_gives_the_same_outputs():
    torch.manual_seed(0)
    net = models.Model_3().eval()
    x = torch.randn(4, 1, 28, 28)
    before = net(x)
    utils.place(net, "cpu", channels_last=True)
    assert utils.is_channels_last(net) and not utils.is_channels_last(models.Model_3())
    assert torch.allclose(net(x), before, atol=1e-5)
