"""Print ``talkingface.face.motion_fit.MEASURE_BASES``: the change of each landmark measure per
unit of each expression coefficient, as the ``meshwarp`` rig displaces the demo portrait's
landmarks (no rendering, no detection: the renderer's own geometry).

    python scripts/calibrate_motion_fit.py
"""

from __future__ import annotations

import numpy as np

from talkingface.assets import demo_portrait
from talkingface.face.motion_fit import FIT_NAMES, face_measures
from talkingface.plugins.render.mesh import BASIS_NAMES
from talkingface.plugins.render.meshwarp import MeshWarpRenderer

# lip_press also drives lip_seal in meshwarp (see MeshWarpRenderer.coefficients).
_DRIVES = {"lip_press": ("lip_press", "lip_seal")}


def measure_bases(size: int = 512) -> dict[str, np.ndarray]:
    """``{coefficient: [M]}`` for every name in FIT_NAMES, from the demo portrait's rig."""
    renderer = MeshWarpRenderer({"size": size})
    prepared = renderer.prepare(demo_portrait())
    rig = prepared.state["rig"]
    rest = rig.points[:478].double().numpy()
    bases = rig.point_bases[:, :478].double().numpy()
    height = float(rig.face_height)
    zero = face_measures(rest, rest, height)
    out = {}
    for name in FIT_NAMES:
        moved = rest.copy()
        for basis in _DRIVES.get(name, (name,)):
            moved[:, :2] += bases[BASIS_NAMES.index(basis)]
        out[name] = face_measures(moved, rest, height) - zero
    return out


def main() -> None:
    print("MEASURE_BASES = {")
    for name, row in measure_bases().items():
        values = ", ".join(f"{v:.4f}" if abs(v) >= 5e-5 else "0" for v in row)
        print(f'    "{name}": ({values}),')
    print("}")


if __name__ == "__main__":
    main()
