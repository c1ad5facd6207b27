/** Plain-text tables for the CLI: columns padded to their widest cell, the last one left free. */

/** Renders `head` and `rows` as aligned columns; the last column is not padded. */
export function renderTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const last = head.length - 1;
  const width = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (i < last ? (r[i] ?? '').length : 0))),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((v, i) => (i < last ? v.padEnd(width[i]!) : v))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}
