"""torch.compile(fullgraph=True) through the codec on the CPU: every native op is a custom op with
a fake implementation, so dynamo traces the whole forward and AOT autograd the backward."""
import torch

from ddfast.codec import CodecConfig, SyntheticSet


def _set():
    config = CodecConfig(synthesis="v4-40", arm_context=16, arm_depth=2)
    return SyntheticSet(3, (12, 10), num_classes=2, channels=1, config=config,
                        generator=torch.Generator().manual_seed(0)).train()


def _step(syn, noise):
    images, _, bits = syn.forward_with_rate(noise=noise)
    return images, bits


def _outputs_and_grads(step, syn, noise, upstream):
    syn.zero_grad(set_to_none=True)
    images, bits = step(syn, noise)
    ((images * upstream).sum() + bits.sum()).backward()
    return [images.detach(), bits.detach()] + [p.grad.clone() for p in syn.parameters()]


def test_compiled_forward_with_rate_equals_eager():
    syn = _set()
    noise = syn.quantizer.sample_noise(syn.stack.latents, torch.Generator().manual_seed(1))
    upstream = torch.randn(6, 1, 12, 10, generator=torch.Generator().manual_seed(2))
    eager = _outputs_and_grads(_step, syn, noise, upstream)
    compiled = _outputs_and_grads(torch.compile(_step, fullgraph=True), syn, noise, upstream)
    for a, b in zip(compiled, eager):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, b.abs().max().item()))
