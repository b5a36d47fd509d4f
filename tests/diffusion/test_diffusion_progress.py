"""Progress callbacks of the diffusion samplers: monotone, ending at (S, S); no effect on
the sample."""

import pytest

torch = pytest.importorskip("torch")

import parasample.diffusion as D  # noqa: E402


@pytest.mark.parametrize("sampler, kw", [
    (D.sample_sequential, {}),
    (D.sample_picard, {"window": 8, "tol": 0.1}),
    (D.sample_asd, {"k": 4}),
])
def test_progress_reaches_the_end_and_leaves_the_sample_alone(sampler, kw):
    model = D.ring_gmm()
    step = D.DDPMStep.from_schedule(model.schedule, 40)
    calls = []
    res = sampler(model, step, shape=(2,), batch=3, rng=5,
                  progress=lambda done, total, label: calls.append((done, total)), **kw)
    plain = sampler(model, step, shape=(2,), batch=3, rng=5, **kw)
    assert torch.equal(res.sample, plain.sample)
    done = [d for d, _ in calls]
    assert all(t == 40 for _, t in calls)
    assert done == sorted(done) and done[-1] == 40
    assert len(calls) >= res.cost.rounds - 1
