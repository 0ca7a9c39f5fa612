/**
 * Docker-style output: tables, --format templates (incl. `json` and `table …`), quiet ids.
 */
import { compileTemplate, isJsonFormat } from './gotemplate.js';
import { formatTable } from './table.js';

export interface Column<T> {
  header: string;
  /** The field name a --format template uses for this column. */
  field: string;
  value: (row: T) => string;
}

/**
 * Prints rows as Docker does: default table, `--format json` (one object per line),
 * `--format 'table {{…}}'`, or a plain template per row.
 */
export function printRows<T>(
  rows: T[],
  columns: Column<T>[],
  format: string | undefined,
  fields: (row: T) => object,
): void {
  if (!format || format === 'table') {
    const table = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => c.value(r)))];
    process.stdout.write(formatTable(table));
    return;
  }
  if (isJsonFormat(format)) {
    for (const r of rows) process.stdout.write(JSON.stringify(fields(r)) + '\n');
    return;
  }
  const isTable = format.startsWith('table ');
  const body = isTable ? format.slice(6) : format;
  const render = compileTemplate(unescapeFormat(body));
  if (isTable) {
    const headerMap = Object.fromEntries(columns.map((c) => [c.field, c.header]));
    // Fields without a column of their own are titled by their name in capitals, as Docker does.
    const sample = rows.length ? fields(rows[0]) : {};
    for (const k of Object.keys(sample)) headerMap[k] ??= k.toUpperCase();
    const headerRow = compileTemplate(unescapeFormat(body), { lenient: true })(headerMap);
    const lines = [headerRow, ...rows.map((r) => render(fields(r)))];
    process.stdout.write(formatTable(lines.map((l) => l.split('\t'))));
    return;
  }
  for (const r of rows) process.stdout.write(render(fields(r)) + '\n');
}

/** Docker turns the typed characters `\t` and `\n` of a --format into a tab and a newline. */
export function unescapeFormat(s: string): string {
  return s.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
}

/** `inspect` output: an indented JSON array, or the template applied to each object. */
export function printInspect(objects: unknown[], format?: string): void {
  if (!format) {
    process.stdout.write(JSON.stringify(objects, null, 4) + '\n');
    return;
  }
  if (isJsonFormat(format)) {
    for (const o of objects) process.stdout.write(JSON.stringify(o) + '\n');
    return;
  }
  const render = compileTemplate(unescapeFormat(format), { lenient: true });
  for (const o of objects) process.stdout.write(render(o) + '\n');
}
