"""Procedural synthetic faces with the 68 iBUG landmarks, written in the 300W on-disk layout.

The real 300W benchmark needs a licensed manual download; these faces let a fresh clone train and
evaluate a landmark detector, occlusion robustness included. Each face is a hand-written 3D mean face
(68 landmarks plus cheek, skull, hairline, ear and neck points) with random shape and expression,
rotated by yaw/pitch/roll, projected with a mild perspective and drawn with OpenCV over a cluttered
background: skin, hair, brows, eyes, nose, lips and jaw line sit where their landmarks are. Occluders
(glasses, hands, face masks, textured shapes, hair locks) are drawn on top and recorded in a mask.

Conventions (as in 300W): the subject's right side appears on the image's left, so in a frontal face
point 36 (right eye outer corner) has a smaller x than 45 and jaw point 0 a smaller x than 16.
Pose angles are degrees: positive yaw turns the face towards the image's right (the subject turns to
their left), hiding the image-right side (jaw 9-16, eye 42-47); negative yaw turns it towards the
image's left. Positive pitch looks up; positive roll rotates the face clockwise in the image.

Occlusion flags per landmark (`.occ`, read by `odn_lightning.data.formats.w300`; the bits are defined
in `odn_lightning.data.records`): bit 1 (OCCLUDED_BY_OBJECT) is the occluder mask at the landmark's
rounded pixel (0 for points outside the image); bit 2 (SELF_OCCLUDED) marks points whose surface faces
away from the camera after rotation, or that hide behind the nose.

Profiles (`SPLIT_PROFILES`, one per split):
- `train`, `val`: |yaw| <= 70 (normal, sd 25), pitch sd 8 (<= 20), roll sd 10 (<= 25), varied
  expressions, 0/1/2 occluders with probabilities 0.4/0.4/0.2, faces 40-70% of the image width.
  About 15% of the points are covered by an occluder on average.
- `common`: |yaw| <= 30 (sd 12), |pitch| <= 15, |roll| <= 15, mild expressions, one small occluder
  (clear glasses, a small shape or a lock of hair) with probability 0.25: under 1% of points covered.
- `challenging`: 70% of faces with |yaw| in 40-70 degrees, pitch up to 30, roll up to 40, strong
  expressions, harsh lighting, more noise and blur, 1-3 large occluders (hands, face masks, mostly
  sunglasses, big shapes, hair): ~40% of the points covered on average, >= 15% in ~80% of the faces.
  The landmark box may leave the image by up to 6% of its size (other profiles keep it inside).

File layout under `root` (written by `ensure_synthetic`):
    manifest.json                    {format_version, seed, image_size, splits: {name: count}}
    <split>/<split>_<i:05d>.jpg      RGB image, JPEG quality 95
    <split>/<split>_<i:05d>.pts      68 landmarks, 300W format (1-based in the file)
    <split>/<split>_<i:05d>.occ      68 occlusion bit masks, one per line
    <split>/masks/<split>_<i:05d>.png  uint8 occluder mask, 255 where an occluder covers the pixel

Face i of split s is a pure function of (seed, s, i, image_size): its random generator is seeded by
`np.random.SeedSequence([seed, stable_hash(s), i])`, so generation is order- and process-independent.
`render_face` splits that generator into independent streams (pose and occluder choice, face,
background, occluder drawing, camera), so overriding the pose or the occluders leaves the rest as is.

Modules, in the order a face is made:
- `profiles`: `SplitProfile` and `SPLIT_PROFILES`, the sampling ranges of each split.
- `template`: the 3D mean face (landmarks, normals, extra head points, skull).
- `head`: pose sampling, rotation, and one random head built from the template.
- `palette`: skin, hair, iris and clothes colours.
- `scene`: the state the drawing steps share; `drawing`: OpenCV primitives, noise and textures.
- `background`, `features` (the head part by part), `occluders`, `camera` (lighting, exposure, noise).
- `render`: `render_face` ties them together; seeding by `face_rng` / `stable_hash`.
- `storage`: files on disk and the manifest; `previews`: landmark overlays and contact sheets.
"""

from __future__ import annotations

from .occluders import OCCLUDER_KINDS
from .previews import contact_sheet, draw_landmarks
from .profiles import SPLIT_PROFILES, SplitProfile
from .render import SyntheticFace, face_rng, object_flags, render_face, render_split_face, stable_hash
from .storage import FORMAT_VERSION, MANIFEST_NAME, ensure_synthetic, generate_split, write_face

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "OCCLUDER_KINDS",
    "SPLIT_PROFILES",
    "SplitProfile",
    "SyntheticFace",
    "contact_sheet",
    "draw_landmarks",
    "ensure_synthetic",
    "face_rng",
    "generate_split",
    "object_flags",
    "render_face",
    "render_split_face",
    "stable_hash",
    "write_face",
]
