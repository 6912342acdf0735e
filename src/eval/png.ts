/**
 * PNG encoding of 8-bit RGB / RGBA images for the run report (fast-png does the chunking and deflate; this
 * file only checks the pixel buffer so a wrong size fails here, naming the image, rather than as a corrupt file).
 */
import { encode } from 'fast-png';

export interface RgbImage {
  width: number;
  height: number;
  /** Row-major pixels, top row first: 3 bytes (RGB) or 4 bytes (RGBA) per pixel. */
  data: Uint8Array;
  channels: 3 | 4;
}

/** PNG file bytes of an 8-bit RGB or RGBA image. */
export function encodePng(image: RgbImage, what = 'image'): Uint8Array {
  const { width, height, data, channels } = image;
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new Error(`encodePng: ${what} is ${width} x ${height} pixels; expected positive integer width and height`);
  }
  if (channels !== 3 && channels !== 4) throw new Error(`encodePng: ${what} has ${String(channels)} channels; expected 3 (RGB) or 4 (RGBA)`);
  if (!(data instanceof Uint8Array) || data.length !== width * height * channels) {
    throw new Error(`encodePng: ${what} has ${data?.length} bytes; expected a Uint8Array of ${width * height * channels} (${width} x ${height} x ${channels})`);
  }
  return encode({ width, height, data, channels, depth: 8 });
}

/** `data:image/png;base64,...` URI of PNG bytes, for embedding in a self-contained HTML page. */
export function pngDataUri(png: Uint8Array): string {
  let binary = '';
  // Chunked so String.fromCharCode never receives more arguments than the engine allows.
  for (let i = 0; i < png.length; i += 0x8000) binary += String.fromCharCode(...png.subarray(i, i + 0x8000));
  return `data:image/png;base64,${btoa(binary)}`;
}
