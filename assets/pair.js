// The pairing page: Accept posts the code (and OTP when asked) to
// accept-invite, keeps the device token in this browser and opens the
// phone app; Decline leaves the invite as it was.
const params = new URLSearchParams(location.search);
const code = params.get("code") ?? "";

// A new id for every pairing: a shared browser never repeats an earlier
// pairing's id.
function newDeviceId() {
  return "web-" + crypto.randomUUID().replaceAll("-", "").slice(0, 20);
}

function say(text, kind) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = kind;
}

async function accept(event) {
  event.preventDefault();
  const button = document.getElementById("accept");
  button.disabled = true;
  const otp = params.get("otp") ?? document.getElementById("otp").value.trim();
  const body = {
    invite_code: code,
    device_id: newDeviceId(),
    device_name: navigator.userAgentData?.platform ? `${navigator.userAgentData.platform} browser` : "Phone browser",
    device_type: "web",
    os_version: (navigator.userAgentData?.platform ?? navigator.platform) || "unknown",
    app_version: "web-1",
  };
  if (otp) body.otp = otp;
  try {
    const response = await fetch("/phone/pairing/accept-invite", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      say(answer.detail ?? "Pairing failed.", "error");
      button.disabled = false;
      return;
    }
    localStorage.setItem("topdog.token", answer.jwt_token);
    localStorage.setItem("topdog.device_id", answer.device_id);
    localStorage.setItem("topdog.user_id", answer.user_id);
    localStorage.removeItem("topdog.since");
    document.getElementById("accept-form").hidden = true;
    document.getElementById("open-app").hidden = false;
    document.querySelector("main").dataset.state = "accepted";
    say("Paired. This phone now gets your Top Dog notifications.", "ok");
    setTimeout(() => location.assign("/app"), 800);
  } catch {
    say("The appliance could not be reached. Check your connection and try again.", "error");
    button.disabled = false;
  }
}

function decline() {
  document.getElementById("accept-form").hidden = true;
  document.querySelector("main").dataset.state = "declined";
  say("Declined. Nothing was paired; you can close this page.", "");
}

document.getElementById("accept-form")?.addEventListener("submit", accept);
document.getElementById("decline")?.addEventListener("click", decline);
if (params.get("otp")) document.getElementById("otp-row").hidden = true;
