"""Which side of ‖∂Q‖ ≤ 1 a denoiser leaves: dense Jacobians at noisy BSD10 32×32 crops.

For J's Jacobian ∂J (1024×1024, exact, by autograd) and ∂Q = 2∂J − Id: the top singular value σ₁(∂Q)²,
the sign of its direction (v₁ᵀ∂Q v₁ / σ₁: −1 when J removes more than all of it, ∂J's eigenvalue below 0;
+1 when J amplifies it, above 1) and its overlap with the constant image, the extreme eigenvalues of
∂J's symmetric part, and ‖α∂Q + (1 − α)Id‖² (the Q of αJ + (1 − α)Id) for α near 1.
    python benchmarks/results/cpu-scale/jacobian_sides.py CHECKPOINT...   (LIPBENCH_DATA set; JSON lines out)

One line per checkpoint: the largest of each value over the crops (the smallest for dJ_sym_min and
direction_sign_min), the worst crop's direction, and every crop's sign.
"""

import json
import sys

import torch

from lipbench.data.images import centre_crop, load_images
from lipbench.models.checkpoint import load_model

SIGMA, CROP, ALPHAS = 0.009, 32, (0.995, 0.99, 0.98)
torch.set_num_threads(1)


def sides(model: torch.nn.Module, x: torch.Tensor) -> dict:
    n = x.numel()
    jac = torch.autograd.functional.jacobian(lambda v: model(v.view_as(x)).reshape(-1), x.reshape(-1), vectorize=True)
    eye, jac64 = torch.eye(n, dtype=torch.float64), jac.double()
    dq = 2 * jac64 - eye
    _, s, vh = torch.linalg.svd(dq)
    v1 = vh[0]
    sym = torch.linalg.eigvalsh((jac64 + jac64.T) / 2)
    row = {
        "lip2_Q": float(s[0] ** 2),
        "direction_sign": float(v1 @ dq @ v1 / s[0]),
        "direction_mean": float(v1.sum().abs() / n**0.5),  # 1: the constant image
        "dJ_sym_min": float(sym[0]),
        "dJ_sym_max": float(sym[-1]),
        "asymmetry": float(torch.linalg.matrix_norm(jac - jac.T, 2) / torch.linalg.matrix_norm(jac, 2)),
    }
    for a in ALPHAS:
        row[f"lip2_Q_alpha{a:g}"] = float(torch.linalg.matrix_norm(a * dq + (1 - a) * eye, 2) ** 2)
    return row


def main(paths: list[str]) -> None:
    generator = torch.Generator().manual_seed(0)
    crops = [centre_crop(image, CROP) for image in load_images("bsd10")]
    noisy = [c + SIGMA * torch.randn(c.shape, generator=generator) for c in crops]
    for path in paths:
        model = load_model(path)
        for p in model.parameters():
            p.requires_grad_(False)
        rows = [sides(model, x.unsqueeze(0) if x.dim() == 3 else x) for x in noisy]
        worst = max(rows, key=lambda r: r["lip2_Q"])
        largest = ("lip2_Q", "dJ_sym_max", "asymmetry", *(f"lip2_Q_alpha{a:g}" for a in ALPHAS))
        out = {"checkpoint": path, "images": len(rows), **{k: max(r[k] for r in rows) for k in largest}}
        out["dJ_sym_min"] = min(r["dJ_sym_min"] for r in rows)
        out["worst_direction_sign"] = worst["direction_sign"]
        out["worst_direction_mean"] = worst["direction_mean"]
        out["direction_signs"] = [round(r["direction_sign"], 3) for r in rows]
        out["direction_sign_min"] = min(out["direction_signs"])
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
