"""Closed convex triangle meshes (boxes, elliptic frusta) from which SynthRooms objects are built.

Every primitive is convex and closed, with triangles wound counter-clockwise seen from outside
(outward normals by the right-hand rule), so a renderer gets consistent normals and a test can
turn each primitive into half-spaces. Units are metres; the object frame is x = width,
y = depth (front of the object towards -y), z = up, with the floor at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Part", "box", "frustum", "transform_parts"]

# The 12 triangles of the unit cube [0, 1]^3 over its 8 corners (corner i has bits x=i&1, y=i&2, z=i&4),
# wound counter-clockwise seen from outside.
_CUBE_CORNERS = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64)
_CUBE_TRIANGLES = np.array(
    [
        [0, 2, 1], [1, 2, 3],  # z = 0 (bottom, normal -z)
        [4, 5, 6], [5, 7, 6],  # z = 1 (top, normal +z)
        [0, 1, 4], [1, 5, 4],  # y = 0 (front, normal -y)
        [2, 6, 3], [3, 6, 7],  # y = 1 (back, normal +y)
        [0, 4, 2], [2, 4, 6],  # x = 0 (left, normal -x)
        [1, 3, 5], [3, 7, 5],  # x = 1 (right, normal +x)
    ],
    dtype=np.int32,
)  # fmt: skip


@dataclass
class Part:
    """One convex primitive of an object.

    Attributes:
        vertices: float64 [V, 3] corner positions in metres.
        triangles: int32 [T, 3] vertex indices, counter-clockwise seen from outside.
        material: which of its object's materials colours this part (0 = main, 1 = secondary,
            2 = accent; the renderer maps it to a colour and texture).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    material: int = 0


def box(x0: float, y0: float, z0: float, x1: float, y1: float, z1: float, material: int = 0) -> Part:
    """Axis-aligned box [x0, x1] × [y0, y1] × [z0, z1] (metres) → 8 vertices, 12 triangles."""
    lo = np.array([x0, y0, z0], dtype=np.float64)
    hi = np.array([x1, y1, z1], dtype=np.float64)
    if np.any(hi <= lo):
        raise ValueError(f"box needs lo < hi on every axis, got lo={lo.tolist()} hi={hi.tolist()}")
    return Part(lo + _CUBE_CORNERS * (hi - lo), _CUBE_TRIANGLES.copy(), material)


def frustum(
    cx: float,
    cy: float,
    z0: float,
    height: float,
    rx: float,
    ry: float | None = None,
    *,
    taper: float = 1.0,
    segments: int = 14,
    material: int = 0,
) -> Part:
    """Vertical elliptic frustum (cylinder when ``taper`` = 1, cone-like shade when < 1).

    The bottom ellipse has half-axes (rx, ry) around (cx, cy) at height z0; the top one is scaled
    by ``taper`` at z0 + height. ``segments`` sides approximate the ellipses; the result is a
    closed convex prism with 2·segments vertices and 4·segments - 4 triangles.
    """
    ry = rx if ry is None else ry
    angles = np.arange(segments) * (2.0 * np.pi / segments)
    ring = np.stack([np.cos(angles) * rx, np.sin(angles) * ry], axis=1)  # [S, 2]
    bottom = np.column_stack([ring[:, 0] + cx, ring[:, 1] + cy, np.full(segments, z0)])
    top = np.column_stack([ring[:, 0] * taper + cx, ring[:, 1] * taper + cy, np.full(segments, z0 + height)])
    vertices = np.concatenate([bottom, top])  # [2S, 3]: bottom ring then top ring
    i = np.arange(segments)
    j = (i + 1) % segments
    # Side quads (i, j, top j, top i) split into two triangles, counter-clockwise from outside.
    sides = np.concatenate([np.stack([i, j, j + segments], 1), np.stack([i, j + segments, i + segments], 1)])
    # Caps as fans around vertex 0 of each ring: bottom seen from below (reversed), top from above.
    k = np.arange(1, segments - 1)
    bottom_cap = np.stack([np.zeros_like(k), k + 1, k], 1)
    top_cap = np.stack([np.full_like(k, segments), k + segments, k + 1 + segments], 1)
    triangles = np.concatenate([sides, bottom_cap, top_cap]).astype(np.int32)
    return Part(vertices, triangles, material)


def transform_parts(parts: list[Part], yaw: float, translation: np.ndarray) -> list[Part]:
    """Rotate parts by ``yaw`` radians about +z, then translate by float [3] metres."""
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return [Part(p.vertices @ rotation.T + translation, p.triangles, p.material) for p in parts]
