/**
 * The layout of DoDNet's dynamic head parameters (bench/torch/tgnet_torch.py `dynamic_head`), shared by the GPU kernel, its
 * CPU twin and the model's controller: per sample 162 values, w1 [8,8] (out, in) at 0, w2 [8,8] at 64,
 * w3 [2,8] at 128, b1 [8] at 144, b2 [8] at 152, b3 [2] at 160.
 */

/** Channels of the head's input and hidden layers. */
export const HEAD_CHANNELS = 8;
export const HEAD_PARAMS = 162;
/** Offsets of w1, w2, w3, b1, b2, b3 inside one sample's 162 parameters. */
export const HEAD_OFFSETS = { w1: 0, w2: 64, w3: 128, b1: 144, b2: 152, b3: 160 } as const;
