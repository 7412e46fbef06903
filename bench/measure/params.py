from torch import nn

# Models keep training-only heads (auxiliary, booster, detail heads) under this attribute, so that counts can
# include or exclude them as the paper does.
AUX_HEADS_ATTR = "aux_heads"


def count_params(model: nn.Module, include_aux: bool = True) -> int:
    """Number of parameters (buffers such as BN running statistics are not parameters).

    With `include_aux=False`, parameters of training-only heads (under an `aux_heads` attribute, at any
    depth, so also inside a wrapper such as zoo's PadToMultiple) are left out.
    """
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if include_aux or AUX_HEADS_ATTR not in name.split(".")
    )
