import { concatBytes } from "./body";

/**
 * Text compressed with gzip as it is written, held compressed in memory: what a part of the test-run archive
 * is made of (src/services/retention). `compressedBytes` grows as the stream flushes, so a writer can stop at
 * a size.
 */
export function gzipWriter() {
  const gzip = new CompressionStream("gzip");
  const writer = gzip.writable.getWriter();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const drained = (async () => {
    const reader = gzip.readable.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      chunks.push(value);
      size += value.byteLength;
    }
  })();
  const encoder = new TextEncoder();
  return {
    get compressedBytes() {
      return size;
    },
    write: (text: string) => writer.write(encoder.encode(text)),
    /** Ends the stream: every compressed byte, in one array. */
    async finish(): Promise<Uint8Array<ArrayBuffer>> {
      await writer.close();
      await drained;
      const bytes = concatBytes(chunks, size);
      chunks.length = 0;
      return bytes;
    },
    async abort(error: unknown): Promise<void> {
      await writer.abort(error).catch(() => {});
      await drained.catch(() => {});
    },
  };
}
