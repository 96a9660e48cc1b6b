// Renders /openapi.json as a readable page: every operation with who may
// call it, its parameters, request body and answers. No third-party code.
const el = (tag, text, className) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
};
const refName = (schema) => (schema?.$ref ?? "").split("/").pop() || schema?.type || "";

function schemaTable(doc, name) {
  const schema = doc.components.schemas[name];
  if (!schema?.properties) return el("p", name);
  const table = el("table");
  const head = el("tr");
  ["field", "type", "required"].forEach((h) => head.append(el("th", h)));
  table.append(head);
  for (const [field, def] of Object.entries(schema.properties)) {
    const row = el("tr");
    const type = refName(def) || [def.type].flat().join(" | ") || "object";
    row.append(el("td", field, "mono"), el("td", def.enum ? def.enum.join(" | ") : type), el("td", schema.required?.includes(field) ? "yes" : ""));
    table.append(row);
  }
  return table;
}

function operation(doc, path, method, op) {
  const section = el("section", undefined, "card");
  section.append(el("h2", `${method.toUpperCase()} ${path}`, "mono"), el("p", op.summary));
  const who = (op.security ?? []).map((s) => Object.keys(s)[0]).join(" or ") || "anyone";
  section.append(el("p", `Who: ${who}`, "help"));
  for (const p of op.parameters ?? []) section.append(el("p", `${p.in} ${p.name}${p.required ? "" : " (optional)"}${p.description ? ` — ${p.description}` : ""}`, "mono"));
  const body = op.requestBody?.content?.["application/json"]?.schema;
  if (body) {
    section.append(el("h3", `Body: ${refName(body)}`));
    section.append(schemaTable(doc, refName(body)));
  }
  const answers = el("ul", undefined, "list");
  for (const [status, r] of Object.entries(op.responses)) {
    const [type, media] = Object.entries(r.content ?? {})[0] ?? ["", {}];
    answers.append(el("li", `${status}: ${r.description}${refName(media?.schema) ? ` — ${refName(media.schema)}` : ""} ${type}`));
  }
  section.append(answers);
  return section;
}

const doc = await (await fetch("/openapi.json")).json();
document.getElementById("intro").textContent = `${doc.info.title} ${doc.info.version}. ${doc.info.description}`;
const list = document.getElementById("operations");
for (const [path, ops] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(ops)) list.append(operation(doc, path, method, op));
}
