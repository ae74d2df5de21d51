// Renders a bench run as the Markdown table of docs/benchmarks.md.

const cell = (v) => (v === null || v === undefined ? "" : String(v).replace(/\|/g, "\\|"));
const mark = (met) => (met === true ? "yes" : met === false ? "**no**" : "");

export function renderMarkdown(run, resultFile) {
  const lines = [
    `Run of ${run.date.slice(0, 16).replace("T", " ")} UTC, \`${run.command}\`, ${run.machine.cores} cores (${run.machine.cpu}), Node ${run.machine.node}, ${run.machine.mosquitto ?? "no mosquitto"}, commit ${run.machine.commit ?? "?"}; ${run.seconds} s in all. Raw figures: [\`${resultFile}\`](../${resultFile}).`,
    "",
    "| scenario | measure | fieldgate | peer or limit, same run | ratio | goal | met |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const result of run.results) {
    if (result.status === "error") {
      lines.push(`| ${result.name} | error | ${cell(String(result.error).split("\n")[0])} | | | | **no** |`);
      continue;
    }
    for (const r of result.rows ?? []) {
      lines.push(
        `| ${result.name} | ${cell(r.metric)} | ${cell(r.fieldgate)} | ${cell(r.peer)} | ${cell(r.ratio)} | ${cell(r.goal)} | ${mark(r.met)} |`,
      );
    }
  }
  return lines.join("\n");
}
