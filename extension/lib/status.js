// What the worker knows about the host, DHIMS2 and the uploads, turned into the one line the
// clerk reads, the fix to apply, and the badge. Pure functions: the popup, the options page and
// the worker all describe the same status the same way.

// runtime.getPlatformInfo().os -> where the clerk types the install command, and the command.
const INSTALL = {
  win: { where: "On Windows, open a Command Prompt in the DHIMS2 Uploader folder", command: "py install.py" },
  mac: { where: "On macOS, open Terminal in the DHIMS2 Uploader folder", command: "python3 install.py" },
  linux: { where: "On Linux, open a terminal in the DHIMS2 Uploader folder", command: "python3 install.py" },
};
const OTHER_SYSTEM = { where: "In the DHIMS2 Uploader folder", command: "python3 install.py" };

/** The install command for the clerk's operating system, as runtime.getPlatformInfo() names it. */
export function installFor(os) {
  return INSTALL[os] ?? OTHER_SYSTEM;
}

/** Connection states where the popup has nothing definite to say yet. */
export const UNSETTLED = new Set(["connecting", "checking"]);

export function emptyStatus() {
  return {
    host: { state: "connecting" },
    config: null,
    connection: { state: "unknown" },
    sender: null,
    batches: [],
    seenRejected: {},
    os: null,
  };
}

/** The server's base address with one trailing slash (batch summaries carry it without). */
export function serverBase(server) {
  return server ? server.replace(/\/*$/, "/") : "";
}

export function signInUrl(server) {
  return `${serverBase(server)}dhis-web-login/`;
}

export function captureEventUrl(server, event) {
  return `${serverBase(server)}dhis-web-capture/index.html#/viewEvent?viewEventId=${encodeURIComponent(event)}`;
}

/** The connection state a failed host reply stands for. */
export function connectionStateFor(code) {
  switch (code) {
    case "AUTH_REQUIRED":
      return "sign_in_needed";
    case "SERVER_UNREACHABLE":
    case "SERVER_ERROR":
    case "TIMEOUT": // the host waits on DHIMS2, which is too slow to answer
      return "unreachable";
    case "NOT_CONFIGURED":
    case "INVALID_INPUT":
    case "INSECURE_SERVER":
      return "not_configured";
    case "BAD_SERVER_RESPONSE":
    case "REQUEST_REJECTED":
      return "server_problem";
    default:
      return "error";
  }
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function hostProblem(problem, os) {
  const install = installFor(os);
  const browserSays = problem.message ? `The browser says: “${problem.message}”` : "";
  switch (problem.kind) {
    case "missing":
    case "exited":
    case "forbidden":
    case "broken":
      return {
        state: "host_missing",
        tone: "error",
        title: "The uploader program is not installed (or cannot start) on this computer",
        detail: browserSays,
        fix: {
          kind: "command",
          text: `${install.where}, run this command, then press Try again:`,
          command: install.command,
        },
        retry: true,
      };
    case "incompatible":
      return {
        state: "host_incompatible",
        tone: "error",
        title: "The uploader program does not match this extension",
        detail: problem.message,
        fix: {
          kind: "command",
          text: `Install the program from the same release as the extension. ${install.where}, run:`,
          command: install.command,
        },
        retry: true,
      };
    default:
      // The worker reconnects by itself: saying so is enough, a button would only race it.
      return {
        state: "connecting",
        tone: "busy",
        title: "Reconnecting to the uploader program…",
        detail: "It tries again by itself in a moment.",
        fix: null,
        retry: false,
      };
  }
}

function signInNeeded(config) {
  if (config?.auth === "token") {
    return {
      state: "sign_in_needed",
      tone: "error",
      title: "DHIMS2 refused the personal access token",
      detail: "Uploads wait until a valid token is saved.",
      fix: { kind: "options", text: "Open settings and save a new token" },
      retry: false,
    };
  }
  return {
    state: "sign_in_needed",
    tone: "error",
    title: "Not signed in to DHIMS2",
    detail: "Uploads wait until you sign in to DHIMS2 in this browser; they go on by themselves.",
    fix: { kind: "link", text: "Sign in to DHIMS2", href: signInUrl(config?.server) },
    retry: false,
  };
}

function sentence(text) {
  return text ? `${text[0].toUpperCase()}${text.slice(1).replace(/\.?$/, ".")} ` : "";
}

function unreachable(message, pending) {
  let waiting = "Records wait on this computer and go by themselves";
  if (pending === 1) waiting = "1 record waits on this computer and goes by itself";
  else if (pending) waiting = `${pending} records wait on this computer and go by themselves`;
  return {
    state: "offline",
    tone: "warn",
    title: "DHIMS2 cannot be reached",
    // The host retries by itself, so there is no button to press.
    detail: `${sentence(message)}${waiting} when the server is back: the uploader keeps trying.`,
    fix: null,
    retry: false,
  };
}

const PROBLEM_TITLES = {
  not_configured: "Settings needed",
  server_problem: "DHIMS2 answered unexpectedly",
  error: "Could not check DHIMS2",
};

/** {state, tone, title, detail, fix, retry} for the connection line of the popup. */
export function describe(status) {
  const { host, config, connection, sender } = status;
  if (host.state === "connecting") {
    return {
      state: "connecting",
      tone: "busy",
      title: "Starting the uploader program…",
      detail: "",
      fix: null,
      retry: false,
    };
  }
  if (host.state !== "ready") return hostProblem(host.problem ?? { kind: "closed" }, status.os);
  const pending = sender?.pending ?? 0;
  switch (connection.state) {
    case "unknown":
      return { state: "checking", tone: "busy", title: "Checking DHIMS2…", detail: "", fix: null, retry: false };
    case "sign_in_needed":
      return signInNeeded(config);
    case "unreachable":
      return unreachable(connection.error?.message, pending);
    case "permission_needed":
      return {
        state: "permission_needed",
        tone: "error",
        title: `The extension may not read your DHIMS2 session at ${config?.server ?? "the server"}`,
        detail: "Allow it once in the settings.",
        fix: { kind: "options", text: "Open settings and press Test connection" },
        retry: false,
      };
    case "not_configured":
    case "server_problem":
    case "error":
      return {
        state: connection.state,
        tone: "error",
        title: PROBLEM_TITLES[connection.state],
        detail: connection.error?.message ?? "",
        fix: { kind: "options", text: "Check the settings" },
        retry: false,
      };
    default:
      break;
  }
  if (sender?.state === "sign_in_needed") return signInNeeded(config);
  if (sender?.state === "offline") return unreachable(sender.error?.message, pending);
  const who = connection.user?.username ? ` as ${connection.user.username}` : "";
  let detail = `${serverBase(config?.server)} · DHIS2 ${connection.version ?? ""}`.trim();
  if (sender?.state === "waiting_for_other_sender") {
    detail = "The dhims2 command line is sending from this computer; these uploads go after it.";
  } else if (pending) {
    detail = `Sending ${plural(pending, "record")}…`;
  }
  return {
    state: "ready",
    tone: pending ? "busy" : "ok",
    title: `Connected to DHIMS2${who}`,
    detail,
    fix: null,
    retry: false,
  };
}

// The worker has no stylesheet: DHIS2's red700 and blue700 (dhis2-tokens.css), written out.
const BADGE_ATTENTION = "#b71c1c";
const BADGE_BUSY = "#1565c0";

/** Failed and newly rejected records need the clerk; otherwise show what is still on its way. */
export function badgeFor(status) {
  const described = describe(status);
  if (
    ["host_missing", "host_incompatible", "sign_in_needed", "permission_needed", "not_configured"].includes(
      described.state,
    )
  ) {
    return { text: "!", color: BADGE_ATTENTION };
  }
  let attention = 0;
  let pending = 0;
  for (const batch of status.batches) {
    attention += batch.failed + Math.max(0, batch.rejected - (status.seenRejected[batch.batch] ?? 0));
    pending += batch.pending;
  }
  if (attention) return { text: String(attention), color: BADGE_ATTENTION };
  pending = status.sender?.pending ?? pending;
  if (pending) return { text: String(pending), color: BADGE_BUSY };
  return { text: "", color: BADGE_BUSY };
}
