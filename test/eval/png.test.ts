import { decode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { encodePng, pngDataUri } from '../../src/eval/png.js';

describe('encodePng', () => {
  it('writes a PNG that decodes to the same RGB pixels', () => {
    const width = 5;
    const height = 3;
    const data = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 37) % 256);
    const png = encodePng({ width, height, data, channels: 3 });
    expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const back = decode(png);
    expect([back.width, back.height, back.channels, back.depth]).toEqual([width, height, 3, 8]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it('keeps the alpha channel of RGBA', () => {
    const data = new Uint8Array([255, 0, 0, 128, 0, 255, 0, 0]);
    const back = decode(encodePng({ width: 2, height: 1, data, channels: 4 }));
    expect(back.channels).toBe(4);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it('names the image and the expected size when the buffer does not fit', () => {
    expect(() => encodePng({ width: 2, height: 2, data: new Uint8Array(11), channels: 3 }, 'axial slice')).toThrow(/axial slice has 11 bytes; expected .* 12/);
    expect(() => encodePng({ width: 0, height: 2, data: new Uint8Array(0), channels: 3 })).toThrow(/0 x 2 pixels/);
    expect(() => encodePng({ width: 1, height: 1, data: new Uint8Array(2), channels: 2 as 3 })).toThrow(/2 channels/);
  });
});

describe('pngDataUri', () => {
  it('base64-encodes the bytes, also past the 32 KiB chunk', () => {
    const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 256);
    const uri = pngDataUri(bytes);
    expect(uri.startsWith('data:image/png;base64,')).toBe(true);
    expect(Array.from(Buffer.from(uri.slice('data:image/png;base64,'.length), 'base64'))).toEqual(Array.from(bytes));
  });
});
