import type { Problem } from "../bindings";

/** Every problem with the file, template id and JSON pointer that locate it. */
export function ProblemsTable({ problems, testId }: { problems: Problem[]; testId?: string }) {
  return (
    <div className="table-scroll problems-scroll">
      <table className="table problems" data-testid={testId}>
        <caption className="visually-hidden">Problems</caption>
        <thead>
          <tr>
            <th scope="col">File</th>
            <th scope="col">Template</th>
            <th scope="col">Where (JSON pointer)</th>
            <th scope="col">Problem</th>
          </tr>
        </thead>
        <tbody>
          {problems.map((p, i) => (
            <tr key={`${p.file}|${p.template_id ?? ""}|${p.pointer}|${p.code}|${i}`}>
              <td className="mono" title={p.file}>
                {fileName(p.file)}
              </td>
              <td className="mono">{p.template_id ?? "—"}</td>
              <td className="mono">{p.pointer === "" ? "(whole file)" : p.pointer}</td>
              <td>{p.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function fileName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}
