"""Encoder-side latent refinement: fit one image's latent to its own rate-distortion cost.

The analysis transform is trained to give good latents for all images on average; for one
image, gradient descent on the latent itself finds a cheaper one (the "amortisation gap").
Rounding has no useful gradient, so the latent is relaxed by stochastic Gumbel annealing
(Yang, Bamler and Mandt, "Improving Inference for Neural Image Compression", NeurIPS 2020):
each element becomes a random soft mix of its floor and ceiling, leaning to the nearer one,
and the temperature falls until the mix is a hard rounding.

Only the encoder does this. The refined latent is rounded and coded by the exact path like any
other, so decoders, the stream format and its exactness are unchanged; the refinement's own
float arithmetic (bf16 where fast) never has to match anything.
"""

from __future__ import annotations

import torch
from torch import Tensor

from informer_codec.models.base import likelihood_bits
from informer_codec.models.blocks import interpolate_lambda

LEARNING_RATE = 0.005  # Adam, in latent units (one unit is one quantisation step)
START_TEMPERATURE = 0.5
END_TEMPERATURE = 0.05
CHECK_EVERY = 10  # iterations between evaluations of the hard-rounded cost
SEED = 2020  # the Gumbel noise is seeded, so one machine always writes the same bytes


def refine_latent(model, x: Tensor, y: Tensor, quality: float, steps: int, bf16: bool,
                  size: tuple[int, int] | None = None) -> Tensor:
    """A latent like ``y`` (1, M, h, w) whose rounding codes ``x`` at a lower rate-distortion cost.

    ``x`` is the padded image the latent came from; ``size`` (height, width) is the part that
    counts for distortion (the rest is padding the decoder crops away). Returns the best
    latent seen at the checks, ``y`` itself if no refinement beat it.
    """
    q = torch.tensor([quality], dtype=torch.float32, device=y.device)
    lam = float(interpolate_lambda(model.config.lambdas, q))
    height, width = size or x.shape[2:]
    target = x[:, :, :height, :width]
    generator = torch.Generator(device=y.device).manual_seed(SEED)

    def cost(latent: Tensor, y_tilde: Tensor | None) -> Tensor:
        with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model.latent_forward(latent, q, "round", y_tilde)
        bits = likelihood_bits(out["likelihoods"]).sum()
        mse = (out["x_hat"].float()[:, :, :height, :width].clamp(0, 1) - target).pow(2).mean()
        return bits / (height * width) + lam * 255**2 * mse

    best = y.detach()
    with torch.no_grad():
        best_cost = float(cost(best, None))
    latent = best.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=LEARNING_RATE)
    with torch.enable_grad():
        for step in range(1, steps + 1):
            relaxed = annealed_rounding(latent, temperature(step, steps), generator)
            (gradient,) = torch.autograd.grad(cost(latent, relaxed), [latent])
            optimizer.zero_grad(set_to_none=True)
            latent.grad = gradient
            optimizer.step()
            if step % CHECK_EVERY == 0 or step == steps:
                with torch.no_grad():
                    current = float(cost(latent, None))
                if current < best_cost:
                    best, best_cost = latent.detach().clone(), current
    return best


def temperature(step: int, steps: int) -> float:
    """Exponential decay from START_TEMPERATURE at step 0 to END_TEMPERATURE at the last step."""
    return START_TEMPERATURE * (END_TEMPERATURE / START_TEMPERATURE) ** (step / max(1, steps))


def annealed_rounding(y: Tensor, tau: float, generator: torch.Generator) -> Tensor:
    """floor(y) plus a Gumbel-softmax weight on the ceiling: near round(y) as ``tau`` falls.

    The logits, -atanh(distance) / tau for the floor and the ceiling, favour the nearer one;
    the weight is differentiable in y, so the gradient sees which way rounding would go.
    """
    floor = torch.floor(y.detach())
    offset = (y - floor).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(offset), -torch.atanh(1 - offset)]) / tau
    uniform = torch.rand(logits.shape, generator=generator, device=y.device).clamp_(1e-10, 1 - 1e-10)
    weights = torch.softmax((logits - torch.log(-torch.log(uniform))) / tau, dim=0)
    return floor + weights[1]

