// "My phones" in the console, for a person signed in through the company's
// identity provider: pair a phone for themselves (SMS link or QR code),
// list and revoke their own phones, and see what was sent to them. The
// appliance acts for the signed-in person only. Plain module, no build step.
const $ = (id) => document.getElementById(id);

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function items(list, line) {
  if (!list.length) return [Object.assign(document.createElement("li"), { textContent: "Nothing yet." })];
  return list.map((x) => Object.assign(document.createElement("li"), { textContent: line(x) }));
}

/** Wires the panel to `ui` (the console's api, notice, explain, when). */
export function myPhones(ui) {
  const { api, notice, explain, when } = ui;

  async function refresh() {
    if ($("my").hidden) return;
    try {
      const mine = await api("GET", "/my/devices");
      $("my-rows").replaceChildren(...mine.devices.map((d) => {
        const tr = document.createElement("tr");
        tr.dataset.device = d.device_id;
        const state = cell(d.status);
        state.className = `state ${d.status}`;
        tr.append(cell(`${d.device_name} (${d.device_id})`), cell(d.device_type), cell(when(d.paired_at)), cell(when(d.last_seen_at)), state);
        const actions = document.createElement("td");
        if (d.status !== "revoked") {
          const b = Object.assign(document.createElement("button"), { type: "button", className: "danger", textContent: "Revoke" });
          b.addEventListener("click", () => revoke(d));
          actions.append(b);
        }
        tr.append(actions);
        return tr;
      }));
      $("my-none").hidden = mine.devices.length > 0;
      const a = await api("GET", "/my/activity");
      $("my-notifications").replaceChildren(...items(a.notifications, (n) => `${when(n.time)} · ${n.title}`));
      $("my-approvals").replaceChildren(...items(a.approvals, (x) => `${when(x.created_at)} · ${x.title}: ${x.status}`));
      $("my-commands").replaceChildren(...items(a.commands, (c) => `${when(c.received_at)} · "${c.text}" → ${c.result?.status ?? "?"}`));
    } catch (error) {
      if (error.status !== 401) notice(explain(error));
    }
  }

  async function revoke(d) {
    if (!confirm(`Revoke ${d.device_name}? It will have to pair again.`)) return;
    try {
      await api("DELETE", `/my/devices/${encodeURIComponent(d.device_id)}`);
      notice(`${d.device_name} revoked.`, "ok");
      refresh();
    } catch (error) {
      notice(explain(error));
    }
  }

  function shown(text, png) {
    $("my-invite").hidden = false;
    $("my-invite-text").textContent = text;
    $("my-qr-image").hidden = !png;
    if (png) $("my-qr-image").src = `data:image/png;base64,${png}`;
  }

  $("my-sms-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const sent = await api("POST", "/my/pairing/send-sms", { phone_number: $("my-phone-number").value });
      shown(`${sent.message}. Open the link on your phone and tap Accept.`, null);
    } catch (error) {
      notice(explain(error));
    }
  });
  $("my-qr").addEventListener("click", async () => {
    try {
      const qr = await api("POST", "/my/pairing/generate-qr");
      shown(`Scan this with your phone's camera, then tap Accept${qr.otp ? ` and type ${qr.otp}` : ""}.`, qr.qr_png_base64);
    } catch (error) {
      notice(explain(error));
    }
  });
  return { refresh };
}
