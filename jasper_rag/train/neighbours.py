"""Batches of teacher-space neighbours: each batch holds groups of texts the teachers place close together.

A random batch of short texts holds mostly unrelated pairs, so the in-batch losses spend most of their
pairs on texts no search would confuse; retrieval turns on the differences between related texts. With
``"neighbour_group": g`` in a stage's settings, each epoch visits the texts in groups of g near
neighbours in the teachers' (ensemble) space, the groups in a seeded random order: a batch of 32 with
g = 8 holds four groups of related texts, and the pairs between groups keep the unrelated side.

Grouping is a seeded greedy pass, a fresh one each epoch: texts are taken in a random order, and each
text not yet grouped takes its nearest neighbours not yet grouped (among its 64 nearest, exact cosine);
a group left short when those run out stays short. Every text appears exactly once per epoch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_CANDIDATES = 64


def nearest_neighbours(
    vectors: torch.Tensor, k: int = DEFAULT_CANDIDATES, device: str | torch.device = "cpu", chunk: int = 1024
) -> np.ndarray:
    """Indices (n x k, nearest first) of each row's ``k`` most cosine-similar other rows; exact, in chunks."""
    unit = F.normalize(vectors.float().to(device), dim=-1)
    k = min(k, len(unit) - 1)
    found = []
    for start in range(0, len(unit), chunk):
        similarities = unit[start : start + chunk] @ unit.T
        rows = torch.arange(len(similarities), device=unit.device)
        similarities[rows, rows + start] = -torch.inf  # a text is not its own neighbour
        found.append(similarities.topk(k, dim=1).indices.cpu())
    return torch.cat(found).numpy() if found else np.zeros((0, 0), dtype=np.int64)


def neighbour_order(neighbours: np.ndarray, group_size: int, seed: int) -> torch.Tensor:
    """One epoch's order of the ``len(neighbours)`` items: seeded groups of up to ``group_size`` neighbours."""
    rng = np.random.default_rng(seed)
    grouped = np.zeros(len(neighbours), dtype=bool)
    groups: list[list[int]] = []
    for item in rng.permutation(len(neighbours)):
        if grouped[item]:
            continue
        group = [int(item)]
        grouped[item] = True
        for other in neighbours[item]:
            if len(group) == group_size:
                break
            if not grouped[other]:
                group.append(int(other))
                grouped[other] = True
        groups.append(group)
    return torch.tensor([item for index in rng.permutation(len(groups)) for item in groups[index]], dtype=torch.long)
