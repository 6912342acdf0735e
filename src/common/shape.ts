/**
 * The two orders a 3-D size, index or spacing comes in. tgnet's arrays (volumes, crops, tiles, tensors) are
 * C-order with W fastest, so their sizes are DHW; NIfTI's header and DICOM's geometry speak XYZ (x fastest). The
 * memory is the same (D = z, H = y, W = x): only the order of the three numbers differs, so they are converted
 * where a header is read or written, with the two functions below.
 */

/** [depth, height, width] = [z, y, x]: array order (a spacing in this order is named `...ZYX`). */
export type DHW = readonly [number, number, number];

/** [x, y, z]: NIfTI's and DICOM's order (dims, pixdim, spacing). */
export type XYZ = readonly [number, number, number];

export function dhwFromXyz(xyz: XYZ): [number, number, number] {
  return [xyz[2], xyz[1], xyz[0]];
}

export function xyzFromDhw(dhw: DHW): [number, number, number] {
  return [dhw[2], dhw[1], dhw[0]];
}
