"""The 21 hand landmarks of MediaPipe (and OpenPose) against the hand model's joints.

MediaPipe's order: 0 the wrist, then thumb, index, middle, ring and pinky, each from its first
joint to its tip (1-4, 5-8, 9-12, 13-16, 17-20). The hand model's joints are MANO's 16 plus the five
fingertips as 16-20, thumb..pinky (``hoirecon.hand.joints``).
"""

from __future__ import annotations

#: MediaPipe landmark i is the hand model's joint MP_TO_HAND[i].
MP_TO_HAND = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
#: The bones as (parent, child) landmark pairs: each finger's first joint hangs from the wrist.
MP_BONES = tuple((0 if i % 4 == 1 else i - 1, i) for i in range(1, 21))
#: The palm's landmarks (the wrist and the four finger knuckles), which the fingers do not move.
MP_PALM = (0, 5, 9, 13, 17)
