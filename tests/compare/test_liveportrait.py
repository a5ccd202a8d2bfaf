"""``talkingface compare`` with ``meshwarp`` and ``liveportrait`` side by side: real pipelines on
the demo portrait and a short clip, LivePortrait on small random networks saved in the
published layout; a variant whose weights are missing is a row with its error."""

from __future__ import annotations

import PIL.Image
import pytest
import soundfile as sf
import torch

from talkingface.compare import runner as R
from talkingface.compare.report import write_all
from talkingface.testing import synthetic_speech


# Random networks draw noise: no face is found on their frames, so motion metrics average
# nothing (NaN, with numpy's warning).
@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_meshwarp_and_liveportrait_side_by_side(tmp_path, portrait):
    # Imported here: at collection time it would build the Triton kernels before
    # tests/kernels/conftest.py turns the interpreter on for their CPU tests.
    from talkingface.plugins.render.liveportrait import SMALL_CONFIG, LivePortraitModels

    weights = LivePortraitModels.from_config(SMALL_CONFIG, seed=0).save(tmp_path / "weights")
    data = tmp_path / "data"
    data.mkdir()
    PIL.Image.fromarray(portrait.pixels.numpy()).save(data / "face.png")
    sf.write(data / "clip.wav", synthetic_speech(0.4).samples.numpy(), 16000)
    variants = [
        "mesh=render=meshwarp threads=1",
        f"lp=render=liveportrait render.params.weights={weights} render.params.networks=small "
        "threads=1",
        f"lp_missing=render=liveportrait render.params.weights={tmp_path / 'nowhere'}",
    ]
    threads = torch.get_num_threads()
    comp = R.ComparisonRunner(
        [R.parse_variant(v) for v in variants],
        R.discover_inputs(data, mode="pairs"),
        stream_latency=False,
        progress=False,
    ).run()
    assert torch.get_num_threads() == threads
    status = {r.variant: (r.status, r.error) for r in comp.records}
    assert status["mesh"] == ("ok", "") and status["lp"] == ("ok", "")
    missing_status, missing_error = status["lp_missing"]
    assert missing_status == "error"
    assert "nowhere" in missing_error and "KwaiVGI/LivePortrait" in missing_error
    lp = next(r for r in comp.records if r.variant == "lp")
    assert lp.mouth is not None and len(lp.mouth) == 10
    paths = write_all(comp, tmp_path / "out")
    csv = paths["csv"].read_text()
    assert "\nlp_missing," in csv and "\nlp," in csv and "\nmesh," in csv
    assert "lp_missing" in paths["html"].read_text()
