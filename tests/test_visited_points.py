"""The Lipschitz evaluation where PnP goes: y, Aᵀy, J's inputs along PnP, the clamped operator PnP
runs, and the adversarial search, against independent references (``lipbench pnp``'s own outputs,
dense Jacobians, a network whose global constant is known in closed form)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from lipbench.cli import main
from lipbench.data import centre_crop, load_images, load_kernel
from lipbench.lipschitz.search import adversarial_search
from lipbench.models import DnCNN, load_model
from lipbench.plumbing.errors import LipbenchError
from lipbench.restoration.metrics import psnr
from lipbench.restoration.physics import Blur
from lipbench.restoration.pnp import pnp_pgd
from lipbench.restoration.trajectory import Trajectory, visited_points
from lipbench.steps.aggregate import bounds_table
from lipbench.steps.grid import grid_table
from lipbench.steps.lipschitz import LipschitzSettings, _clamped_norms, _norms, clamped_operator


def _dense_lip2_q(f, x: torch.Tensor) -> float:
    """‖2 ∂f(x) − Id‖² from the dense Jacobian (float64 SVD)."""
    jac = torch.autograd.functional.jacobian(lambda v: f(v.view_as(x)).flatten(), x.flatten()).double()
    return torch.linalg.matrix_norm(2 * jac - torch.eye(len(jac), dtype=jac.dtype), ord=2).item() ** 2


def test_pnp_keeps_the_gradient_step_from_each_requested_iterate():
    torch.manual_seed(0)
    A = Blur(torch.ones(3, 3) / 9)
    y = torch.rand(1, 1, 12, 12)

    def denoiser(v):
        return 0.9 * v + 0.05

    kept = pnp_pgd(denoiser, A, y, gamma=1.0, iters=6, keep_inputs={0, 2, 6}).inputs
    step = A.gradient_step(y, 1.0)
    assert sorted(kept) == [0, 2, 6]
    torch.testing.assert_close(kept[0], step(y))  # x_0 = y
    for k in (2, 6):
        x_k = pnp_pgd(denoiser, A, y, gamma=1.0, iters=k).x
        torch.testing.assert_close(kept[k], step(x_k))
    with pytest.raises(ValueError, match="keep_inputs"):
        pnp_pgd(denoiser, A, y, gamma=1.0, iters=3, keep_inputs={4})


def test_points_along_pnp_are_where_lipbench_pnp_applies_j(tmp_path, random_checkpoint, data_dir):
    """``pnp k=3`` is the gradient step from the 3rd iterate of ``lipbench pnp`` (its final.pt after 3
    iterations), and ``y`` is the observation whose PSNR ``lipbench pnp`` reports."""
    args = ["pnp", "--checkpoint", random_checkpoint, "--iters", "3", "--crop", "32", "--max-images", "2"]
    assert main([*args, "--kernels", "levin1", "gaussian_1_6", "--out", str(tmp_path)]) == 0
    finals = torch.load(tmp_path / "final.pt", weights_only=True)
    report = pd.read_csv(tmp_path / "final.csv", dtype={"image": str}).set_index(["image", "kernel"])
    model = load_model(random_checkpoint).eval()
    images = [centre_crop(x, 32) for x in load_images("bsd10", data_dir)[:2]]
    ids = list(report.index.get_level_values(0).unique())
    kernels = {k: load_kernel(k, data_dir) for k in ("levin1", "gaussian_1_6")}
    points = visited_points(model, ids, images, Trajectory(kernels, {k: 0.01 for k in kernels}, iters=3), [0, 3])
    by_kind = {p.kind: p for p in points}
    assert list(by_kind) == ["y", "Aty", "pnp k=0", "pnp k=3"]
    trajectory = Trajectory(kernels, {k: 0.01 for k in kernels}, iters=3)
    for p, q in zip(points, visited_points(model, ids, images, trajectory, [0, 3], max_batch=3), strict=True):
        assert (p.kind, p.images, p.kernels) == (q.kind, q.images, q.kernels)  # batched as lipbench pnp: same points
        torch.testing.assert_close(torch.stack(p.x), torch.stack(q.x))
    assert not model.clamp  # left as it was
    for n, (image, kernel) in enumerate(zip(by_kind["y"].images, by_kind["y"].kernels, strict=True)):
        A = Blur(kernels[kernel])
        y = by_kind["y"].x[n][None]
        x_true = images[ids.index(image)][None]
        assert psnr(y, x_true).item() == pytest.approx(report.loc[(image, kernel), "psnr_input"], abs=1e-4)
        torch.testing.assert_close(by_kind["Aty"].x[n][None], A.adjoint(y))
        step = A.gradient_step(y, 1.99)
        torch.testing.assert_close(by_kind["pnp k=0"].x[n][None], step(y))
        torch.testing.assert_close(by_kind["pnp k=3"].x[n][None], step(finals[f"{image}/{kernel}"][None]))


@pytest.mark.parametrize("clamp", ["both", "output"])
def test_the_clamped_operator_matches_the_dense_jacobian_where_the_clamps_act(clamp):
    torch.manual_seed(1)
    model = DnCNN(depth=3, width=4).eval()
    x = (0.5 + 0.6 * torch.randn(3, 1, 6, 6)).clamp(-0.5, 1.5)  # pixels outside [0, 1]
    x[2] = 0.5  # a point where no clamp acts: J's own values are reused
    settings = LipschitzSettings(checkpoint="unused", tol=1e-6, max_iter=500)
    op = clamped_operator(model, clamp)
    at_j = _norms(model, x, settings)
    got = _clamped_norms(op, x, at_j, settings)
    for b in range(3):
        assert got["lip2_Q"][b].item() == pytest.approx(_dense_lip2_q(op, x[b : b + 1]), rel=1e-4)
    assert got["lip2_Q"][2] == at_j["lip2_Q"][2]
    assert got["lip2_Q"][0] != at_j["lip2_Q"][0]
    assert clamped_operator(model, "none") is None and not model.clamp


def _threshold_net(a: float, t: float) -> DnCNN:
    """J(x) = x + a·relu(x − t) per pixel: ∂Q = Id + 2a·diag[x > t], so max ‖∂Q‖² = (1 + 2a)² on
    [0, 1]ⁿ (t < 1) and 1 wherever every pixel is below t."""
    net = DnCNN(depth=2, width=1, activation="relu").eval()
    with torch.no_grad():
        for conv in (net.body[0], net.body[2]):
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = 1.0
        net.body[2].weight.mul_(a)
        net.body[0].bias.fill_(-t)
        net.body[2].bias.zero_()
    return net


def test_the_search_finds_the_closed_form_maximum_where_gradients_of_the_true_network_vanish():
    net = _threshold_net(a=0.5, t=0.6)
    starts = torch.full((2, 1, 8, 8), 0.5)
    x = starts.clone().requires_grad_(True)  # the true network's Jacobian is constant here: no gradient
    w = torch.randn(2, 1, 8, 8)
    (g,) = torch.autograd.grad(2 * net(x) - x, x, w, create_graph=True)
    (ascent,) = torch.autograd.grad(g.square().sum(), x, allow_unused=True, materialize_grads=True)
    assert not ascent.any()
    result = adversarial_search(net, starts, steps=60, generator=torch.Generator().manual_seed(0))
    assert result.start.tolist() == pytest.approx([1.0, 1.0], rel=1e-5)
    assert result.lower.tolist() == pytest.approx([4.0, 4.0], rel=1e-4)
    assert ((result.x >= 0) & (result.x <= 1)).all()
    for b in range(2):
        assert _dense_lip2_q(net, result.x[b : b + 1]) == pytest.approx(4.0, rel=1e-9)


def test_lipschitz_step_evaluates_pnp_points_and_the_search(tmp_path, random_checkpoint):
    out = tmp_path / "lip.csv"
    args = ["lipschitz", "--checkpoint", random_checkpoint, "--crop", "32", "--tol", "1e-3", "--out", str(out)]
    points = ["--points", "noisy", "y", "adjoint", "iterates", "search", "--iters", "4", "--iterates", "0", "2"]
    search = ["--search-steps", "5", "--search-starts", "3", "--search-random", "1"]
    assert main([*args, *points, *search, "--kernels", "levin1", "gaussian_1_6"]) == 0
    table = pd.read_csv(out, dtype={"image": str})
    kinds = ["noisy", "y", "Aty", "pnp k=0", "pnp k=2", "pnp k=4", "search"]
    assert list(dict.fromkeys(table.point)) == kinds
    for kind in kinds[1:6]:  # 10 images × 2 kernels, J and J_clamped at the images only
        rows = table[table.point == kind]
        assert len(rows) == 40 and set(rows.element) == {"r0"} and set(rows.kernel) == {"levin1", "gaussian_1_6"}
    found = table[(table.point == "search") & (table.operator == "J")]
    starts = table[(table.operator == "J") & (table.element == "r0") & (table.point != "search")]
    worst3 = starts.nlargest(3, "lip2_Q")
    assert found.start.tolist() == [*worst3.point, "uniform"] and found.image.tolist()[:3] == worst3.image.tolist()
    assert found.lip2_Q.max() >= starts.lip2_Q.max() * 0.99  # the search keeps its start when it finds nothing larger
    bad = main([*args, "--points", "iterates", "--iters", "4", "--iterates", "5"])
    assert bad == 2 and not out.with_name("lip2.csv").exists()


def test_iterates_beyond_the_run_are_refused_only_where_they_are_points():
    LipschitzSettings(checkpoint="m.pt", points=("noisy", "y"), iters=4, iterates=(0, 5))  # not evaluated: no error
    with pytest.raises(LipbenchError, match=r"--iterates \[5\] lie beyond --iters 4"):
        LipschitzSettings(checkpoint="m.pt", points=("noisy", "iterates"), iters=4, iterates=(0, 5))


def test_bounds_and_grid_tables_report_the_worst_found_beside_the_verdict():
    from lipbench.steps import grid, lipschitz

    assert grid.PAPER_POINTS == lipschitz.PAPER_POINTS  # the verdict reads the papers' points only

    def row(lam, point, value, operator="J", element="r0", **extra):
        return {"denoiser": "dncnn", "lam": lam, "point": point, "operator": operator, "element": element,
                "lip_J": 1.0, "lip2_Q": value, **extra}  # fmt: skip

    lip = pd.DataFrame(
        [
            row(0.0, "noisy", 2.0), row(0.0, "noisy", 2.2, element="r1"), row(0.0, "search", 3.0),
            row(0.1, "noisy", 0.9), row(0.1, "y", 1.1), row(0.1, "search", 1.2), row(0.1, "noisy", 1.3, "J_clamped"),
        ]
    ).assign(upper_lip2_Q=50.0, upper_how="product")  # fmt: skip
    grid = grid_table(lip)
    assert set(grid.point) == {"noisy"}  # the verdict reads the papers' points only
    crops = grid[grid.scope == "crops"].set_index("lam")
    assert crops.effect[0.1] == "target met" and crops.worst_found.to_dict() == {0.0: 3.0, 0.1: 1.2}
    bounds = bounds_table(lip).set_index("lam")
    assert bounds.loc[0.1, ["crops_max", "worst_found", "worst_point", "worst_clamped", "upper"]].tolist() == [
        0.9,
        1.2,
        "search",
        1.3,
        50.0,
    ]
    assert bounds.loc[0.0, "crops_max"] == 2.0 and bounds.loc[0.0, "worst_found"] == 3.0


def test_the_workflow_follows_the_table_runs_protocol_to_pnp_points():
    from lipbench.workflow.rules import lipschitz_args

    config = {
        "pnp": {"kernels": ["levin1", "gaussian_1_6"], "kernel_sigma": {"gaussian_1_6": 0.008}, "protocol": "paper2",
                "iters": 40, "sigma": 0.02},
        "lipschitz": {"points": ["y", "iterates"], "iters": 30},
    }  # fmt: skip
    got = lipschitz_args(config).split()
    assert got[:2] == ["--protocol", "paper2"]
    assert "--blur-sigma" in got and got[got.index("--blur-sigma") + 1] == "0.02"
    assert got[got.index("--iters") + 1] == "30" and got.count("--iters") == 1  # the section's own wins
    assert got[got.index("--kernels") + 1 : got.index("--kernels") + 3] == ["levin1", "gaussian_1_6"]
    assert got[got.index("--kernel-sigma") + 1] == "gaussian_1_6=0.008"
    config["lipschitz"]["kernels"] = ["levin1"]  # the noise of a kernel it does not evaluate is left out
    assert "--kernel-sigma" not in lipschitz_args(config).split()
    assert got[got.index("--iterates") + 1 : got.index("--iterates") + 5] == ["0", "1", "5", "20"]  # ≤ 30 only
    del config["lipschitz"]["iters"]  # pnp's 40 iterations; explicit iterates pass as given (checked by the step)
    config["lipschitz"]["iterates"] = [0, 50]
    got = lipschitz_args(config).split()
    assert got[got.index("--iters") + 1] == "40" and got[got.index("--iterates") + 1 : got.index("--iterates") + 3] == [
        "0",
        "50",
    ]


def test_smooth_surrogate_replaces_every_relu_and_leaves_the_model_alone():
    from lipbench.lipschitz.search import SmoothLeakyReLU, smooth_surrogate

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(2, 1, 3, padding=1), nn.ReLU())
    smooth, n = smooth_surrogate(model, beta=1e4)
    assert n == 2 and isinstance(model[1], nn.LeakyReLU) and isinstance(smooth[1], SmoothLeakyReLU)
    x = torch.randn(1, 1, 5, 5)
    torch.testing.assert_close(smooth(x), model(x), atol=1e-3, rtol=0)  # β → ∞: the network itself


def test_the_pnp_step_is_averaged_with_a_firmly_nonexpansive_j_though_its_clamped_j_need_not_be():
    """T = C∘J∘C∘G (paper 1's clamps, γ = 1 = 1/‖AᵀA‖) with the certified J: at every point,
    ‖∂T − (1 − α)Id‖ ≤ α for α = averaged_constant(½, ½, ½, ½) = 0.8 (dense Jacobians)."""
    from lipbench.models import CertifiedDenoiser
    from lipbench.restoration.pnp import averaged_constant

    assert averaged_constant(0.5, 0.5) == pytest.approx(2 / 3) and averaged_constant(0.5) == 0.5
    alpha = averaged_constant(0.5, 0.5, 0.5, 0.5)
    assert alpha == pytest.approx(0.8)
    torch.manual_seed(0)
    model = CertifiedDenoiser(depth=3, width=6).eval()
    model.clamp = True
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    A = Blur(kernel)
    assert A.norm_squared((8, 8)).item() == pytest.approx(1.0)
    y = A(torch.rand(1, 1, 8, 8)) + 0.05 * torch.randn(1, 1, 8, 8)
    step = A.gradient_step(y, 1.0)
    worst = 0.0

    def pnp_step(v: torch.Tensor) -> torch.Tensor:
        return model(step(v.view(1, 1, 8, 8))).flatten()

    for seed in range(6):
        x = 1.4 * torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) - 0.2
        jac = torch.autograd.functional.jacobian(pnp_step, x.flatten()).double()
        eye = torch.eye(len(jac), dtype=jac.dtype)
        worst = max(worst, torch.linalg.matrix_norm(jac - (1 - alpha) * eye, ord=2).item())
    assert worst <= alpha * (1 + 1e-6)
    x = torch.full((1, 1, 8, 8), 0.3)  # a J that is not FNE (1.5·Id inside the clamps) fails the same check
    jac = torch.autograd.functional.jacobian(lambda v: (1.5 * step(v.view_as(x)).clamp(0, 1)).clamp(0, 1).flatten(),
                                             x.flatten()).double()  # fmt: skip
    assert torch.linalg.matrix_norm(jac - (1 - alpha) * torch.eye(len(jac), dtype=jac.dtype), ord=2).item() > 1.2
