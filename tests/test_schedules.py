import keras
import numpy as np
import pytest

from tfcyclegan.core.schedules import LinearDecay


def reference(step, lr0, epochs, decay_epoch, spe):
    """Algorithm 1, line 12, written out per step in plain Python."""
    start, last = decay_epoch * spe, epochs * spe - 1
    return lr0 if step < start else lr0 * (1 - (step - start) / (last - start))


@pytest.mark.parametrize("epochs,decay_epoch,spe", [(200, 100, 10), (4, 2, 3), (3, 0, 5)])
def test_values_at_key_steps(epochs, decay_epoch, spe):
    schedule = LinearDecay(2e-4, epochs, decay_epoch, spe)
    last = epochs * spe - 1
    start = decay_epoch * spe
    steps = [0, max(start - 1, 0), start, (start + last) // 2, last - 1, last]
    for step in steps:
        np.testing.assert_allclose(
            float(schedule(step)), reference(step, 2e-4, epochs, decay_epoch, spe), rtol=1e-6, atol=1e-12
        )
    assert float(schedule(last)) == 0.0  # exactly zero on the last step of the last epoch
    assert float(schedule(last - 1)) > 0.0


def test_constant_phase_and_midpoint():
    schedule = LinearDecay(1.0, 200, 100, 10)
    assert float(schedule(0)) == 1.0
    assert float(schedule(999)) == 1.0
    np.testing.assert_allclose(float(schedule(1000 + 999 // 2)), 1 - (999 // 2) / 999, rtol=1e-6)


def test_get_config_round_trips_through_keras_serialization():
    schedule = LinearDecay(3e-4, 10, 5, 7)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, LinearDecay)
    assert restored.get_config() == schedule.get_config()


def test_reads_the_optimizer_step_so_a_restored_optimizer_continues():
    schedule = LinearDecay(1.0, 4, 2, 5)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    var = keras.Variable(1.0)
    optimizer.build([var])
    optimizer.iterations.assign(15)  # as a checkpoint restore does
    np.testing.assert_allclose(float(optimizer.learning_rate), reference(15, 1.0, 4, 2, 5))


def test_rejects_decay_past_the_end():
    with pytest.raises(ValueError):
        LinearDecay(1.0, 4, 5, 10)
