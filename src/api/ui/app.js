// firewatch dashboard. Plain JavaScript, no build step: built into the binary and served by
// firewatch. Views: alert board, alert page, risk map, building page, duty page, admin.
// Everything it shows comes from /api/v1 (contract); live changes come over the change feed
// (Server-Sent Events, /api/v1/events), never by polling.
"use strict";

// ---------------------------------------------------------------------------------------
// Words (Chinese first; the operators read Chinese) and times (the control room's zone).
// ---------------------------------------------------------------------------------------
const WORDS = {
  zh: {
    "nav.board": "告警", "nav.map": "风险一张图", "nav.duty": "值班", "nav.admin": "管理",
    loading: "加载中…", logout: "退出", cancel: "取消", "sound.enable": "启用声音",
    "conn.connected": "已连接", "conn.connecting": "连接中…", "conn.disconnected": "未连接",
    "offline.banner": "未连接到 firewatch：画面上的内容可能已过时，正在重连…",
    "login.title": "登录", "login.user": "用户名", "login.password": "密码", "login.submit": "登录",
    "login.failed": "登录失败", "login.expired": "登录已过期，请重新登录",
    "board.title": "当前告警", "board.empty": "没有未关闭的告警", "board.help": "快捷键：j/k 选择，a 确认，n 备注，c 关闭，Enter 详情",
    "f.building": "建筑", "f.severity": "级别", "f.kind": "类型", "f.status": "状态", "f.all": "全部",
    "col.severity": "级别", "col.where": "位置", "col.what": "内容", "col.since": "开始", "col.status": "状态", "col.actions": "操作",
    "act.ack": "确认", "act.note": "备注", "act.verify": "核实", "act.close": "关闭", "act.details": "详情",
    "act.rectify": "报告已整改", "act.check": "发起查岗", "act.save": "保存",
    "sev.critical": "紧急", "sev.major": "重要", "sev.minor": "一般", "sev.info": "提示",
    "st.open": "待确认", "st.acknowledged": "已确认", "st.closed": "已关闭",
    "st.online": "在线", "st.offline": "离线", "st.never_seen": "从未上线",
    "kind.water_pressure": "消防水压", "kind.water_level": "水箱液位", "kind.electrical": "电气火灾",
    "kind.fire_lane": "生命通道", "kind.transmitter": "用户信息传输装置",
    "cls.real": "真实警情", "cls.false_alarm": "误报", "cls.test": "测试", "cls.fault": "设备故障", "cls.resolved": "隐患已消除",
    "note": "备注", "classification": "分类", "result": "核实结果", "called119": "已拨打 119",
    "note.required": "紧急告警关闭时必须填写备注",
    "active": "持续中", "cleared": "已恢复", "ack_code": "确认码",
    "alert.title": "告警", "alert.history": "全过程", "alert.notes": "备注",
    "h.at": "时间", "h.what": "事件", "h.by": "人员", "h.detail": "详情",
    "what.fired": "报警", "what.refired": "再次报警", "what.cleared": "恢复", "what.repeat": "提醒",
    "what.acknowledged": "确认", "what.note": "备注", "what.closed": "关闭", "what.verified": "现场核实",
    "what.silenced": "已静默（未通知）", "what.unsilenced": "静默结束", silenced: "静默中",
    "admin.silences": "静默与维保时段", "sil.new": "新建静默", "sil.matchers": "范围", "sil.when": "时间",
    "sil.reason": "原因", "sil.by": "设置人", "sil.held": "压下的告警", "sil.state": "状态", "sil.expire": "提前结束",
    "sil.building": "建筑编号", "sil.rule": "规则（可用 * 结尾，如 transmitter.*）", "sil.hours": "持续小时数",
    "sil.notify": "结束时若告警仍在则通知", "sil.st.active": "生效中", "sil.st.pending": "未开始", "sil.st.waiting": "时段外", "sil.st.expired": "已结束",
    "what.escalated": "升级", "what.sla_missed": "超时未确认", "what.notified": "已通知",
    "what.notify_failed": "通知失败", "what.notify_gave_up": "通知放弃", "what.workorder_overdue": "整改逾期",
    "map.title": "风险一张图", "map.nocoords": "没有坐标的建筑", "map.legend.health": "外圈：设备健康（绿 = 全部在线且数据可信，黄 = 未接入或有数据质量问题，灰色虚线 = 有离线设备）",
    "map.none": "无未关闭告警",
    "b.devices": "设备", "b.coverage": "覆盖情况", "b.workorders": "未完成的整改工单", "b.chart": "读数曲线",
    "b.required": "应配", "b.registered": "登记", "b.connected": "接入", "b.online": "在线",
    "b.missing": "缺少", "b.complete": "齐全", "b.none": "无",
    "d.id": "设备", "d.kind": "类型", "d.location": "安装位置", "d.state": "状态", "d.values": "最新读数",
    "d.quality": "数据质量", "d.last_seen": "最后上报", "range": "时间范围", "metric": "指标",
    "r.1h": "1 小时", "r.6h": "6 小时", "r.24h": "24 小时", "r.7d": "7 天", "r.30d": "30 天", "chart.empty": "该时间范围内没有读数",
    "duty.title": "值班", "duty.now": "当前值班", "duty.shift": "班次", "duty.operators": "值班人员",
    "duty.unstaffed": "无人值班", "duty.next": "下一班", "duty.checks": "最近查岗", "duty.sla": "本班超时未确认",
    "duty.handover": "交接班摘要", "duty.open_alerts": "未关闭告警", "duty.open_wo": "未完成工单",
    "chk.created": "发起时间", "chk.by": "发起人", "chk.status": "结果", "chk.answered": "应答", "chk.unanswered": "未应答",
    "chk.waiting": "等待中", "chk.answered_all": "全部应答", "chk.unanswered_some": "有未应答",
    "wo.title": "整改工单", "wo.status.open": "待整改", "wo.status.rectified": "已整改待验收", "wo.status.closed": "已关闭",
    "wo.deadline": "期限", "wo.overdue": "已逾期", "wo.description": "内容",
    "admin.users": "账户", "admin.audit": "操作记录", "u.name": "用户名", "u.role": "角色", "u.buildings": "建筑", "u.disabled": "停用",
    "role.operator": "值班员", "role.manager": "消防安全管理人", "role.admin": "管理员",
    "a.at": "时间", "a.actor": "人员", "a.action": "操作", "a.target": "对象", "a.status": "结果",
    "err.forbidden": "没有权限", "err.notfound": "未找到", "err.network": "网络错误",
    "yes": "是", "no": "否", "all_buildings": "全部建筑",
  },
  en: {
    "nav.board": "Alerts", "nav.map": "Risk map", "nav.duty": "Duty", "nav.admin": "Admin",
    loading: "Loading…", logout: "Log out", cancel: "Cancel", "sound.enable": "Enable sound",
    "conn.connected": "Connected", "conn.connecting": "Connecting…", "conn.disconnected": "Not connected",
    "offline.banner": "Not connected to firewatch: what you see may be out of date. Reconnecting…",
    "login.title": "Log in", "login.user": "User", "login.password": "Password", "login.submit": "Log in",
    "login.failed": "Login failed", "login.expired": "Your session ended: log in again",
    "board.title": "Open alerts", "board.empty": "No open alerts", "board.help": "Keys: j/k select, a acknowledge, n note, c close, Enter details",
    "f.building": "Building", "f.severity": "Severity", "f.kind": "Kind", "f.status": "Status", "f.all": "All",
    "col.severity": "Severity", "col.where": "Where", "col.what": "What", "col.since": "Since", "col.status": "Status", "col.actions": "Actions",
    "act.ack": "Acknowledge", "act.note": "Note", "act.verify": "Verify", "act.close": "Close", "act.details": "Details",
    "act.rectify": "Report rectified", "act.check": "Start duty check", "act.save": "Save",
    "sev.critical": "Critical", "sev.major": "Major", "sev.minor": "Minor", "sev.info": "Info",
    "st.open": "Open", "st.acknowledged": "Acknowledged", "st.closed": "Closed",
    "st.online": "Online", "st.offline": "Offline", "st.never_seen": "Never seen",
    "kind.water_pressure": "Water pressure", "kind.water_level": "Tank level", "kind.electrical": "Electrical fire",
    "kind.fire_lane": "Fire lane", "kind.transmitter": "Transmitter",
    "cls.real": "Real", "cls.false_alarm": "False alarm", "cls.test": "Test", "cls.fault": "Device fault", "cls.resolved": "Resolved",
    "note": "Note", "classification": "Classification", "result": "Result", "called119": "119 called",
    "note.required": "Closing a critical alert needs a note",
    "active": "active", "cleared": "cleared", "ack_code": "Ack code",
    "alert.title": "Alert", "alert.history": "History", "alert.notes": "Notes",
    "h.at": "At", "h.what": "What", "h.by": "By", "h.detail": "Detail",
    "what.fired": "fired", "what.refired": "fired again", "what.cleared": "cleared", "what.repeat": "reminder",
    "what.acknowledged": "acknowledged", "what.note": "note", "what.closed": "closed", "what.verified": "verified",
    "what.silenced": "silenced (nobody told)", "what.unsilenced": "silence over", silenced: "silenced",
    "admin.silences": "Silences and maintenance windows", "sil.new": "New silence", "sil.matchers": "Covers", "sil.when": "When",
    "sil.reason": "Reason", "sil.by": "Set by", "sil.held": "Alerts held back", "sil.state": "State", "sil.expire": "End now",
    "sil.building": "Building id", "sil.rule": "Rule (may end in *, e.g. transmitter.*)", "sil.hours": "Hours",
    "sil.notify": "When it ends, tell of alerts still active", "sil.st.active": "active", "sil.st.pending": "pending", "sil.st.waiting": "outside its window", "sil.st.expired": "over",
    "what.escalated": "escalated", "what.sla_missed": "SLA missed", "what.notified": "notified",
    "what.notify_failed": "notification failed", "what.notify_gave_up": "notification gave up", "what.workorder_overdue": "work order overdue",
    "map.title": "Risk map", "map.nocoords": "Buildings without coordinates", "map.legend.health": "Ring: device health (green = all online and trustworthy, yellow = not connected or data-quality findings, grey dashed = devices offline)",
    "map.none": "no open alerts",
    "b.devices": "Devices", "b.coverage": "Coverage", "b.workorders": "Open work orders", "b.chart": "Readings",
    "b.required": "Required", "b.registered": "Registered", "b.connected": "Connected", "b.online": "Online",
    "b.missing": "Missing", "b.complete": "Complete", "b.none": "none",
    "d.id": "Device", "d.kind": "Kind", "d.location": "Location", "d.state": "State", "d.values": "Latest values",
    "d.quality": "Data quality", "d.last_seen": "Last seen", "range": "Range", "metric": "Metric",
    "r.1h": "1 hour", "r.6h": "6 hours", "r.24h": "24 hours", "r.7d": "7 days", "r.30d": "30 days", "chart.empty": "No readings in this range",
    "duty.title": "Duty", "duty.now": "On duty now", "duty.shift": "Shift", "duty.operators": "Operators",
    "duty.unstaffed": "nobody on duty", "duty.next": "Next", "duty.checks": "Last duty checks", "duty.sla": "SLA misses this shift",
    "duty.handover": "Handover summary", "duty.open_alerts": "Open alerts", "duty.open_wo": "Open work orders",
    "chk.created": "Started", "chk.by": "By", "chk.status": "Result", "chk.answered": "Answered", "chk.unanswered": "Unanswered",
    "chk.waiting": "waiting", "chk.answered_all": "all answered", "chk.unanswered_some": "some unanswered",
    "wo.title": "Work order", "wo.status.open": "open", "wo.status.rectified": "rectified, to check", "wo.status.closed": "closed",
    "wo.deadline": "Deadline", "wo.overdue": "overdue", "wo.description": "Description",
    "admin.users": "Accounts", "admin.audit": "Audit trail", "u.name": "User", "u.role": "Role", "u.buildings": "Buildings", "u.disabled": "Disabled",
    "role.operator": "Operator", "role.manager": "Manager", "role.admin": "Admin",
    "a.at": "At", "a.actor": "Who", "a.action": "Action", "a.target": "Target", "a.status": "Status",
    "err.forbidden": "Not allowed", "err.notfound": "Not found", "err.network": "Network error",
    "yes": "yes", "no": "no", "all_buildings": "All buildings",
  },
};
const SEVERITIES = ["critical", "major", "minor", "info"];
const SEV_RANK = { critical: 0, major: 1, minor: 2, info: 3 };
const KINDS = ["water_pressure", "water_level", "electrical", "fire_lane", "transmitter"];
const CLASSES = ["real", "false_alarm", "test", "fault", "resolved"];
const VERIFICATIONS = ["real", "false_alarm", "test", "fault"];

let lang = localStorage.getItem("fw.lang") === "en" ? "en" : "zh";
let tz = "Asia/Shanghai";
let rulesWords = {};
const t = (k) => WORDS[lang][k] ?? WORDS.zh[k] ?? k;
const ruleName = (r) => rulesWords[r]?.[lang] ?? r;

function fmtTime(iso, withDate = true) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const o = { timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
  if (withDate) Object.assign(o, { year: "numeric", month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", o).format(d);
}
function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - new Date(iso)) / 1000));
  if (s < 60) return lang === "zh" ? `${s} 秒前` : `${s} s ago`;
  if (s < 3600) return lang === "zh" ? `${Math.floor(s / 60)} 分钟前` : `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return lang === "zh" ? `${Math.floor(s / 3600)} 小时前` : `${Math.floor(s / 3600)} h ago`;
  return lang === "zh" ? `${Math.floor(s / 86400)} 天前` : `${Math.floor(s / 86400)} d ago`;
}

// ---------------------------------------------------------------------------------------
// Small DOM helpers: every text goes in as text, never as HTML.
// ---------------------------------------------------------------------------------------
function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}
const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, ...kids) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}
const $ = (sel) => document.querySelector(sel);
const sev = (v) => h("span", { class: `sev ${v}` }, t(`sev.${v}`));
function td(label, ...kids) { return h("td", { "data-label": label }, ...kids); }
function table(cls, heads, rows) { // rows: a list of <tr>, or a <tbody> the caller keeps filling
  const body = rows instanceof Element && rows.tagName === "TBODY" ? rows : h("tbody", {}, rows);
  return h("table", { class: cls }, h("thead", {}, h("tr", {}, heads.map((x) => h("th", {}, x)))), body);
}

// ---------------------------------------------------------------------------------------
// API: cookie session, CSRF header on writes, 401 leads to the login form.
// ---------------------------------------------------------------------------------------
const session = { me: null, csrf: null };
class ApiError extends Error { constructor(status, msg) { super(msg); this.status = status; } }
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, t("err.network"));
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (res.status === 401 && path !== "/api/v1/login") { showLogin(t("login.expired")); throw new ApiError(401, t("login.expired")); }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || `HTTP ${res.status}`);
  return data;
}
const may = {
  handle: () => session.me && session.me.role !== "manager",
  rectify: () => !!session.me,
  admin: () => session.me && session.me.role === "admin",
};

// ---------------------------------------------------------------------------------------
// The change feed: one EventSource for the whole page. Its state is always on screen; after
// a drop the browser resumes with Last-Event-ID and the store replays what happened
// meanwhile; a `reset` (or a stream that could not resume) reloads the view from the API.
// ---------------------------------------------------------------------------------------
const feed = { es: null, lastId: null, building: null, listeners: new Set(), retry: null, state: "connecting" };
function setConn(state) {
  feed.state = state;
  const c = $("#conn");
  c.dataset.state = state;
  c.textContent = t(`conn.${state}`);
  $("#offline").hidden = state !== "disconnected";
  $("#offline").textContent = t("offline.banner");
}
function openFeed(building) {
  if (feed.es && feed.building === building && feed.es.readyState !== EventSource.CLOSED) return;
  if (feed.es) feed.es.close();
  clearTimeout(feed.retry);
  feed.building = building;
  const q = new URLSearchParams();
  if (building) q.set("building", building);
  if (feed.lastId !== null) q.set("since", feed.lastId);
  const es = new EventSource(`/api/v1/events${q.toString() ? "?" + q : ""}`);
  feed.es = es;
  setConn("connecting");
  let opened = false;
  es.onopen = () => {
    setConn("connected");
    // Whatever was on screen may be older than the stream's start: redraw from the API.
    if (opened || feed.lastId === null) refreshView();
    opened = true;
  };
  es.onerror = () => {
    setConn("disconnected");
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. the server answered 401 or 503): try again ourselves.
      feed.retry = setTimeout(async () => {
        try { await api("GET", "/api/v1/me"); } catch (e) { /* login shown on 401 */ }
        if (session.me) openFeed(feed.building);
      }, 2000);
    }
  };
  const onChange = (ev) => {
    if (ev.lastEventId) feed.lastId = ev.lastEventId;
    let data;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    for (const f of feed.listeners) f(data);
  };
  for (const type of ["alert", "device", "notification", "command", "workorder", "duty_check"]) es.addEventListener(type, onChange);
  es.addEventListener("reset", (ev) => { if (ev.lastEventId) feed.lastId = ev.lastEventId; refreshView(); });
}

// ---------------------------------------------------------------------------------------
// Sound and visual cue: while a critical alert is open (not acknowledged) the page beeps
// every two seconds and its row flashes. Browsers allow sound after a click on the page.
// ---------------------------------------------------------------------------------------
const alarm = { ctx: null, timer: null, on: false };
function audioCtx() {
  if (!alarm.ctx) { const C = window.AudioContext || window.webkitAudioContext; if (C) alarm.ctx = new C(); }
  return alarm.ctx;
}
function beep() {
  const ctx = audioCtx();
  if (!ctx) return;
  if (ctx.state === "suspended") { $("#sound").hidden = false; ctx.resume().catch(() => {}); return; }
  $("#sound").hidden = true;
  for (const [i, f] of [[0, 880], [1, 660]]) {
    const o = ctx.createOscillator(), g = ctx.createGain();
    o.frequency.value = f; o.connect(g); g.connect(ctx.destination);
    const at = ctx.currentTime + i * 0.25;
    g.gain.setValueAtTime(0.25, at); g.gain.exponentialRampToValueAtTime(0.001, at + 0.22);
    o.start(at); o.stop(at + 0.24);
  }
}
function setAlarm(on) {
  document.body.dataset.alarm = on ? "on" : "off";
  if (on === alarm.on) return;
  alarm.on = on;
  clearInterval(alarm.timer);
  if (on) { beep(); alarm.timer = setInterval(beep, 2000); }
  document.title = on ? `🔥 ${lang === "zh" ? "紧急告警" : "CRITICAL"} · firewatch` : "firewatch";
}

// ---------------------------------------------------------------------------------------
// Routing: one page, views by path (links in notifications point at /alerts/{id}).
// ---------------------------------------------------------------------------------------
let current = { view: null, cleanup: null };
function navigate(path, replace = false) {
  if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
  route();
}
function refreshView() { if (current.view && current.view.refresh) current.view.refresh(); }
async function route() {
  if (!session.me) return;
  if (current.cleanup) current.cleanup();
  current = { view: null, cleanup: null };
  const p = location.pathname;
  for (const a of document.querySelectorAll("nav a")) a.toggleAttribute("aria-current", p.startsWith(a.getAttribute("href")));
  for (const a of document.querySelectorAll("nav a[aria-current]")) a.setAttribute("aria-current", "page");
  const main = $("#view");
  main.replaceChildren(h("p", { class: "muted" }, t("loading")));
  let m;
  const mine = session.me.buildings;
  const defaultBuilding = mine && mine.length ? mine[0] : null;
  if (p === "/" || p === "/login" || p === "/board") current.view = boardView(main);
  else if (p === "/map") current.view = mapView(main);
  else if (p === "/duty") current.view = dutyView(main);
  else if (p === "/admin") current.view = adminView(main);
  else if ((m = p.match(/^\/buildings\/([^/]+)$/))) current.view = buildingView(main, decodeURIComponent(m[1]));
  else if ((m = p.match(/^\/alerts\/([^/]+)$/))) current.view = alertView(main, decodeURIComponent(m[1]));
  else if ((m = p.match(/^\/workorders\/([^/]+)$/))) current.view = workorderView(main, decodeURIComponent(m[1]));
  else current.view = boardView(main);
  const building = current.view.building ?? defaultBuilding;
  feed.listeners.clear();
  if (current.view.onChange) feed.listeners.add(current.view.onChange);
  feed.listeners.add(alarmWatch);
  // Operators and admins follow every building (an alarm anywhere must sound); a manager
  // follows the building in view (the feed of a manager carries one building).
  openFeed(mine && mine.length ? building || defaultBuilding : null);
  current.cleanup = current.view.cleanup || null;
  try { await current.view.refresh(); } catch (e) { showError(main, e); }
  main.focus({ preventScroll: true });
}
function toast(msg) {
  const el = $("#toast");
  el.textContent = msg;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 8000);
}
function showError(main, e) {
  const msg = e.status === 403 ? t("err.forbidden") : e.status === 404 ? t("err.notfound") : e.message;
  main.replaceChildren(h("p", { class: "bad", id: "view-error" }, msg));
}
document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[href]");
  if (!a || a.target || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/metrics")) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);

// Critical alerts anywhere (not only on the board) keep the alarm on until acknowledged.
const unacked = new Map();
function alarmWatch(ch) {
  if (ch.type !== "alert" || !ch.alert) return;
  const a = ch.alert;
  // A silenced alarm (a maintenance window) is shown, not sounded.
  if (a.severity === "critical" && a.status === "open" && !a.silenced) unacked.set(a.id, a); else unacked.delete(a.id);
  setAlarm(unacked.size > 0);
}
async function loadUnacked() {
  const open = await api("GET", `/api/v1/alerts?status=open&severity=critical&limit=1000${feed.building ? "&building=" + encodeURIComponent(feed.building) : ""}`);
  unacked.clear();
  for (const a of open) if (!a.silenced) unacked.set(a.id, a);
  setAlarm(unacked.size > 0);
}

// ---------------------------------------------------------------------------------------
// Actions on an alert, shared by the board and the alert page.
// ---------------------------------------------------------------------------------------
function dialog(title, fields, okLabel, submit) {
  const d = $("#dialog");
  $("#dialog-title").textContent = title;
  $("#dialog-body").replaceChildren(...fields);
  $("#dialog-error").textContent = "";
  const ok = $("#dialog-ok");
  ok.textContent = okLabel;
  const form = $("#dialog-form");
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    ok.disabled = true;
    try { await submit(new FormData(form)); d.close(); } catch (e) { $("#dialog-error").textContent = e.message; } finally { ok.disabled = false; }
  };
  $("#dialog-cancel").onclick = () => d.close();
  d.showModal();
  const first = d.querySelector("select, textarea, input");
  if (first) first.focus();
}
const noteField = (required) => h("label", {}, t("note"), h("textarea", { name: "note", rows: 3, required }));
function select(name, values, prefix) {
  return h("select", { name }, values.map((v) => h("option", { value: v }, t(`${prefix}.${v}`))));
}
const actions = {
  ack: (a) => api("POST", `/api/v1/alerts/${a.id}/ack`, {}),
  note: (a, done) => dialog(`${t("act.note")} · ${a.id}`, [noteField(true)], t("act.save"), async (f) => done(await api("POST", `/api/v1/alerts/${a.id}/notes`, { note: f.get("note") }))),
  verify: (a, done) => dialog(`${t("act.verify")} · ${a.id}`, [
    h("label", {}, t("result"), select("result", VERIFICATIONS, "cls")),
    h("label", {}, h("input", { type: "checkbox", name: "called_119", style: "display:inline;width:auto" }), " ", t("called119")),
    noteField(false),
  ], t("act.verify"), async (f) => {
    const body = { result: f.get("result") };
    if (f.get("called_119")) body.called_119 = true;
    if (f.get("note")) body.note = f.get("note");
    done(await api("POST", `/api/v1/alerts/${a.id}/verify`, body));
  }),
  close: (a, done) => dialog(`${t("act.close")} · ${a.id}`, [
    h("label", {}, t("classification"), select("classification", CLASSES, "cls")),
    noteField(a.severity === "critical"),
    a.severity === "critical" ? h("p", { class: "muted" }, t("note.required")) : null,
  ], t("act.close"), async (f) => {
    const body = { classification: f.get("classification") };
    if (f.get("note")) body.note = f.get("note");
    done(await api("POST", `/api/v1/alerts/${a.id}/close`, body));
  }),
};
function actionButtons(a, done) {
  if (!may.handle() || a.status === "closed") return [];
  const b = (act, label, cls) => h("button", { type: "button", class: cls, "data-act": act, onclick: async (ev) => {
    ev.stopPropagation();
    try {
      if (act === "ack") done(await actions.ack(a)); else actions[act](a, done);
    } catch (e) { toast(e.message); }
  } }, t(label));
  const out = [];
  if (a.status === "open") out.push(b("ack", "act.ack", "primary"));
  out.push(b("note", "act.note"));
  if (a.status === "acknowledged" && !a.verified_at) out.push(b("verify", "act.verify"));
  out.push(b("close", "act.close", a.status === "acknowledged" ? "danger" : null));
  return out;
}

// ---------------------------------------------------------------------------------------
// Alert board.
// ---------------------------------------------------------------------------------------
function boardView(main) {
  const q = new URLSearchParams(location.search);
  const filt = { building: q.get("building") || "", severity: q.get("severity") || "", kind: q.get("kind") || "", status: q.get("status") || "" };
  const alerts = new Map();
  const names = new Map();
  let sel = null;
  const mine = session.me.buildings;
  const view = { building: filt.building || (mine && mine.length ? mine[0] : null) };
  if (mine && mine.length && !filt.building) filt.building = mine[0];
  const tbody = h("tbody", { id: "board-rows" });
  const counts = h("div", { class: "counts", id: "board-counts" });
  const bsel = h("select", { name: "building", id: "f-building" });
  const filters = h("form", { class: "filters", id: "board-filters", onsubmit: (e) => e.preventDefault() },
    h("label", {}, t("f.building"), bsel),
    h("label", {}, t("f.severity"), h("select", { name: "severity" }, h("option", { value: "" }, t("f.all")), SEVERITIES.map((v) => h("option", { value: v }, t(`sev.${v}`))))),
    h("label", {}, t("f.kind"), h("select", { name: "kind" }, h("option", { value: "" }, t("f.all")), KINDS.map((v) => h("option", { value: v }, t(`kind.${v}`))))),
    h("label", {}, t("f.status"), h("select", { name: "status" }, h("option", { value: "" }, t("f.all")), ["open", "acknowledged"].map((v) => h("option", { value: v }, t(`st.${v}`))))),
  );
  for (const [k, v] of Object.entries(filt)) { const e = filters.elements[k]; if (e && k !== "building") e.value = v; }
  filters.addEventListener("change", () => {
    for (const k of Object.keys(filt)) filt[k] = filters.elements[k].value;
    const nq = new URLSearchParams(Object.entries(filt).filter(([, v]) => v));
    history.replaceState(null, "", `/board${nq.toString() ? "?" + nq : ""}`);
    if (mine && mine.length) { view.building = filt.building; openFeed(filt.building); view.refresh(); } else draw();
  });
  main.replaceChildren(
    h("h1", {}, t("board.title")), filters, counts,
    table("cards board", [t("col.severity"), t("col.where"), t("col.what"), t("col.since"), t("col.status"), t("col.actions")], tbody),
    h("p", { class: "muted" }, t("board.help")),
  );
  const shown = () => [...alerts.values()]
    .filter((a) => a.status !== "closed")
    .filter((a) => (!filt.building || a.building === filt.building) && (!filt.severity || a.severity === filt.severity) && (!filt.kind || a.kind === filt.kind) && (!filt.status || a.status === filt.status))
    .sort((x, y) => SEV_RANK[x.severity] - SEV_RANK[y.severity] || new Date(x.started_at) - new Date(y.started_at) || x.id.localeCompare(y.id));
  function update(a) { alerts.set(a.id, a); }
  function draw() {
    const list = shown();
    const open = [...alerts.values()].filter((a) => a.status !== "closed");
    counts.replaceChildren(...SEVERITIES.map((v) => h("span", {}, sev(v), " ", String(open.filter((a) => a.severity === v).length))));
    const buildings = [...new Set([...names.keys(), ...open.map((a) => a.building)])].sort();
    const keep = filt.building;
    bsel.replaceChildren(...(mine && mine.length ? [] : [h("option", { value: "" }, t("f.all"))]),
      ...buildings.filter((b) => !mine || !mine.length || mine.includes(b)).map((b) => h("option", { value: b }, names.get(b) ? `${names.get(b)} (${b})` : b)));
    bsel.value = keep;
    if (!list.length) { tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted", id: "board-empty" }, t("board.empty")))); return; }
    tbody.replaceChildren(...list.map((a) => {
      const flash = a.severity === "critical" && a.status === "open" && !a.silenced;
      const row = h("tr", { class: `${a.severity}${flash ? " flash" : ""}${sel === a.id ? " sel" : ""}`, "data-alert": a.id, "data-severity": a.severity, "data-status": a.status, tabindex: 0,
        onclick: () => { sel = a.id; draw(); }, ondblclick: () => navigate(`/alerts/${a.id}`) },
        td(t("col.severity"), sev(a.severity)),
        td(t("col.where"), h("a", { href: `/buildings/${encodeURIComponent(a.building)}` }, a.building_name || names.get(a.building) || a.building), h("br"), h("span", { class: "muted" }, [a.location, a.device, a.channel].filter(Boolean).join(" · "))),
        td(t("col.what"), h("strong", {}, ruleName(a.rule)), h("br"), h("span", { class: "muted" }, a.message || "")),
        td(t("col.since"), fmtTime(a.started_at), h("br"), h("span", { class: "muted" }, ago(a.started_at))),
        td(t("col.status"), t(`st.${a.status}`), " · ", a.active ? t("active") : t("cleared"), a.silenced ? [" ", h("span", { class: "tag warn", "data-silenced": a.silenced.silence, title: a.silenced.silence }, t("silenced"))] : null, a.acknowledged_by ? h("br") : null, a.acknowledged_by ? h("span", { class: "muted" }, a.acknowledged_by) : null, h("br"), h("span", { class: "muted" }, `${t("ack_code")} ${a.ack_code || ""}`)),
        td(t("col.actions"), h("div", { class: "actions" }, actionButtons(a, (n) => { update(n); draw(); }), h("a", { href: `/alerts/${a.id}`, "data-act": "details" }, t("act.details")))),
      );
      return row;
    }));
  }
  view.refresh = async () => {
    const b = filt.building ? `&building=${encodeURIComponent(filt.building)}` : "";
    const [open, acked, blds] = await Promise.all([
      api("GET", `/api/v1/alerts?status=open&limit=10000${b}`),
      api("GET", `/api/v1/alerts?status=acknowledged&limit=10000${b}`),
      api("GET", "/api/v1/buildings").catch(() => []),
    ]);
    alerts.clear();
    for (const a of [...open, ...acked]) update(a);
    for (const x of blds) names.set(x.id, x.name);
    await loadUnacked();
    draw();
  };
  view.onChange = (ch) => { if (ch.type === "alert" && ch.alert) { update(ch.alert); draw(); } };
  const tick = setInterval(draw, 30000); // the "x min ago" column
  const keys = (ev) => {
    if (ev.target.closest("input, textarea, select, dialog")) return;
    const list = shown();
    const i = list.findIndex((a) => a.id === sel);
    const a = list[i];
    if (ev.key === "j" || ev.key === "ArrowDown") { sel = (list[Math.min(i + 1, list.length - 1)] || {}).id; draw(); }
    else if (ev.key === "k" || ev.key === "ArrowUp") { sel = (list[Math.max(i - 1, 0)] || {}).id; draw(); }
    else if (a && ev.key === "Enter") navigate(`/alerts/${a.id}`);
    else if (a && may.handle() && ev.key === "a" && a.status === "open") actions.ack(a).then((n) => { update(n); draw(); }).catch((e) => toast(e.message));
    else if (a && may.handle() && ev.key === "n") actions.note(a, (n) => { update(n); draw(); });
    else if (a && may.handle() && ev.key === "c") actions.close(a, (n) => { update(n); draw(); });
    else return;
    ev.preventDefault();
  };
  document.addEventListener("keydown", keys);
  view.cleanup = () => { clearInterval(tick); document.removeEventListener("keydown", keys); };
  return view;
}

// ---------------------------------------------------------------------------------------
// One alert: everything about it on one page.
// ---------------------------------------------------------------------------------------
function detailText(e) {
  const d = e.detail || {};
  const parts = [];
  if (d.message) parts.push(d.message);
  if (d.classification) parts.push(t(`cls.${d.classification}`));
  if (d.result) parts.push(t(`cls.${d.result}`));
  if (d.channel) parts.push(`${d.channel} → ${d.target || ""}`);
  if (d.to) parts.push(Array.isArray(d.to) ? d.to.join(", ") : d.to);
  if (d.step) parts.push(`#${d.step}`);
  if (d.error) parts.push(d.error);
  return parts.join(" · ");
}
function alertView(main, id) {
  const view = {};
  let alertNow = null;
  view.refresh = async () => {
    const a = await api("GET", `/api/v1/alerts/${encodeURIComponent(id)}`);
    if (!a.building_name) { // the building's name from the registry, when it has one
      const b = await api("GET", `/api/v1/buildings/${encodeURIComponent(a.building)}`).catch(() => null);
      if (b && b.name) a.building_name = b.name;
    }
    alertNow = a;
    view.building = a.building;
    draw(a);
  };
  function draw(a) {
    main.replaceChildren(
      h("h1", {}, sev(a.severity), " ", ruleName(a.rule), " ", h("span", { class: "muted" }, a.id)),
      h("div", { class: "actions", id: "alert-actions" }, actionButtons(a, () => view.refresh())),
      h("div", { class: "grid" },
        h("div", { class: "card" }, h("dl", { class: "kv", id: "alert-facts" },
          h("dt", {}, t("col.status")), h("dd", { id: "alert-status", "data-status": a.status }, `${t(`st.${a.status}`)} · ${a.active ? t("active") : t("cleared")}`),
          h("dt", {}, t("col.where")), h("dd", {}, h("a", { href: `/buildings/${encodeURIComponent(a.building)}` }, a.building_name || a.building), " · ", [a.location, a.device, a.channel].filter(Boolean).join(" · ")),
          h("dt", {}, t("col.what")), h("dd", {}, a.message || ""),
          h("dt", {}, t("col.since")), h("dd", {}, fmtTime(a.started_at)),
          h("dt", {}, t("ack_code")), h("dd", {}, a.ack_code || ""),
          a.classification ? [h("dt", {}, t("classification")), h("dd", {}, t(`cls.${a.classification}`))] : null,
          a.verification ? [h("dt", {}, t("result")), h("dd", {}, `${t(`cls.${a.verification}`)} · ${a.verified_by || ""}`)] : null,
          a.workorder ? [h("dt", {}, t("wo.title")), h("dd", {}, h("a", { href: `/workorders/${a.workorder}` }, a.workorder))] : null,
        )),
        h("div", { class: "card" }, h("h2", {}, t("alert.notes")), (a.notes || []).length ? h("ul", {}, a.notes.map((n) => h("li", {}, `${fmtTime(n.at)} ${n.by}: ${n.note}`))) : h("p", { class: "muted" }, t("b.none"))),
      ),
      h("h2", {}, t("alert.history")),
      table("cards", [t("h.at"), t("h.what"), t("h.by"), t("h.detail")], (a.history || []).map((e) => h("tr", { "data-what": e.what },
        td(t("h.at"), fmtTime(e.at)), td(t("h.what"), t(`what.${e.what}`)), td(t("h.by"), e.by || ""), td(t("h.detail"), [e.note, detailText(e)].filter(Boolean).join(" · "))))),
    );
  }
  view.onChange = (ch) => { if (ch.type === "alert" && ch.alert && alertNow && ch.alert.id === alertNow.id) view.refresh(); if (ch.type === "notification" && alertNow && ch.alert === alertNow.id) view.refresh(); };
  return view;
}

// ---------------------------------------------------------------------------------------
// Risk map: buildings at their registry coordinates, filled by the worst open alert, ringed
// by device health. No tiles are needed; `http.map_tiles` puts tiles behind the points.
// ---------------------------------------------------------------------------------------
const SEV_COLOR = { critical: "#ff4d4f", major: "#ff9f1a", minor: "#f5d90a", info: "#6fb6ff", none: "#3ddc84" };
function mapView(main) {
  const view = {};
  let pending = null;
  view.refresh = async () => {
    const list = await api("GET", "/api/v1/buildings");
    draw(list);
  };
  function draw(list) {
    const placed = list.filter((b) => typeof b.lat === "number" && typeof b.lon === "number");
    const W = 1000, H = 620, pad = 60;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "map", id: "risk-map", role: "img", "aria-label": t("map.title") });
    if (placed.length) {
      let [minLat, maxLat, minLon, maxLon] = [Infinity, -Infinity, Infinity, -Infinity];
      for (const b of placed) { minLat = Math.min(minLat, b.lat); maxLat = Math.max(maxLat, b.lat); minLon = Math.min(minLon, b.lon); maxLon = Math.max(maxLon, b.lon); }
      const span = Math.max(maxLat - minLat, (maxLon - minLon) * Math.cos((minLat + maxLat) / 2 * Math.PI / 180), 0.002);
      const cLat = (minLat + maxLat) / 2, cLon = (minLon + maxLon) / 2;
      // Web Mercator, so that the points sit right on tiles when there are tiles.
      const merc = (lat, lon) => { const x = (lon + 180) / 360, r = lat * Math.PI / 180; return [x, (1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2]; };
      const [cx, cy] = merc(cLat, cLon);
      const [x0] = merc(cLat, cLon - span / 2 / Math.cos(cLat * Math.PI / 180)), [x1] = merc(cLat, cLon + span / 2 / Math.cos(cLat * Math.PI / 180));
      const scale = Math.min(W - 2 * pad, H - 2 * pad) / Math.max(x1 - x0, 1e-9);
      const proj = (lat, lon) => { const [x, y] = merc(lat, lon); return [W / 2 + (x - cx) * scale, H / 2 + (y - cy) * scale]; };
      if (session.me.map_tiles) {
        const z = Math.max(0, Math.min(19, Math.round(Math.log2(scale / 256))));
        const n = 2 ** z, tile = scale / n;
        const tx0 = Math.floor((cx - W / 2 / scale) * n), tx1 = Math.floor((cx + W / 2 / scale) * n);
        const ty0 = Math.floor((cy - H / 2 / scale) * n), ty1 = Math.floor((cy + H / 2 / scale) * n);
        for (let tx = tx0; tx <= tx1; tx++) for (let ty = ty0; ty <= ty1; ty++) {
          if (ty < 0 || ty >= n) continue;
          const url = session.me.map_tiles.replace("{z}", z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty);
          svg.append(s("image", { href: url, x: W / 2 + (tx / n - cx) * scale, y: H / 2 + (ty / n - cy) * scale, width: tile + 0.5, height: tile + 0.5 }));
        }
      } else {
        // A plain background: a graticule labelled in degrees.
        const step = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5].find((st) => span / st <= 8) || 10;
        for (let lon = Math.floor((cLon - span) / step) * step; lon <= cLon + span; lon += step) {
          const [x] = proj(cLat, lon);
          if (x < 0 || x > W) continue;
          svg.append(s("line", { x1: x, y1: 0, x2: x, y2: H, stroke: "#22303f" }), s("text", { x: x + 3, y: H - 6 }, `${lon.toFixed(3)}°E`));
        }
        for (let lat = Math.floor((cLat - span) / step) * step; lat <= cLat + span; lat += step) {
          const [, y] = proj(lat, cLon);
          if (y < 0 || y > H) continue;
          svg.append(s("line", { x1: 0, y1: y, x2: W, y2: y, stroke: "#22303f" }));
          if (y > 14 && y < H - 20) svg.append(s("text", { x: 4, y: y - 3 }, `${lat.toFixed(3)}°N`)); // clear of the longitudes
        }
      }
      const rank = (b) => SEV_RANK[b.worst_open] ?? 9;
      for (const b of placed.sort((x, y) => rank(y) - rank(x))) { // the worst drawn last, on top
        const [x, y] = proj(b.lat, b.lon);
        const fill = SEV_COLOR[b.worst_open || "none"];
        // Healthy: every registered device online and telling the truth.
        const healthy = b.devices > 0 && b.online === b.devices && b.with_findings === 0;
        const ring = b.offline > 0 ? "#a9b3bf" : healthy ? "#3ddc84" : "#f5d90a";
        const label = `${b.name || b.id}${b.worst_open ? " · " + t(`sev.${b.worst_open}`) : ""}`;
        const g = s("a", { href: `/buildings/${encodeURIComponent(b.id)}`, class: "bld", "data-building": b.id, "data-worst": b.worst_open || "none", tabindex: 0 },
          s("title", {}, `${b.name || b.id} (${b.id}) — ${b.open_alerts} ${t("duty.open_alerts")}, ${b.online}/${b.devices} ${t("b.online")}`),
          s("circle", { cx: x, cy: y, r: b.worst_open === "critical" ? 14 : 11, fill, stroke: ring, "stroke-width": 4, "stroke-dasharray": b.offline > 0 ? "4 3" : null }),
          s("text", { x: x + 17, y: y + 4 }, label));
        g.addEventListener("click", (ev) => { ev.preventDefault(); navigate(`/buildings/${encodeURIComponent(b.id)}`); });
        svg.append(g);
      }
    }
    const unplaced = list.filter((b) => !(typeof b.lat === "number" && typeof b.lon === "number"));
    main.replaceChildren(
      h("h1", {}, t("map.title")),
      h("div", { class: "legend" }, SEVERITIES.slice(0, 3).map((v) => h("span", {}, h("span", { class: "dot", style: `background:${SEV_COLOR[v]}` }), t(`sev.${v}`))),
        h("span", {}, h("span", { class: "dot", style: `background:${SEV_COLOR.none}` }), t("map.none")), h("span", { class: "muted" }, t("map.legend.health"))),
      svg,
      unplaced.length ? [h("h2", {}, t("map.nocoords")), h("ul", {}, unplaced.map((b) => h("li", {}, h("a", { href: `/buildings/${encodeURIComponent(b.id)}` }, b.name || b.id), b.worst_open ? [" ", sev(b.worst_open)] : null)))] : null,
    );
  }
  // Redraw at most once a second while alerts and devices change.
  view.onChange = (ch) => { if ((ch.type === "alert" || ch.type === "device") && !pending) pending = setTimeout(() => { pending = null; view.refresh().catch(() => {}); }, 1000); };
  view.cleanup = () => clearTimeout(pending);
  return view;
}

// ---------------------------------------------------------------------------------------
// Building page: devices, latest values and quality, readings chart, coverage, work orders.
// ---------------------------------------------------------------------------------------
function valuesText(v) { return Object.entries(v || {}).map(([k, x]) => `${k} ${typeof x === "number" ? +x.toFixed(3) : x}`).join(" · "); }
function buildingView(main, id) {
  const view = { building: id };
  let chartDevice = null;
  const chartBox = h("div", { id: "chart-box" });
  view.refresh = async () => {
    const [b, cov, wos] = await Promise.all([
      api("GET", `/api/v1/buildings/${encodeURIComponent(id)}`),
      api("GET", `/api/v1/coverage?building=${encodeURIComponent(id)}`).catch(() => null),
      api("GET", `/api/v1/workorders?building=${encodeURIComponent(id)}&limit=200`).catch(() => []),
    ]);
    const pb = cov && cov.per_building ? cov.per_building.find((x) => x.building === id) : null;
    const devices = b.device_list || [];
    main.replaceChildren(
      h("h1", {}, b.name || b.id, " ", h("span", { class: "muted" }, b.id), b.worst_open ? [" ", sev(b.worst_open)] : null),
      h("p", { class: "muted" }, [b.address, b.control_room].filter(Boolean).join(" · "), " ", h("a", { href: `/board?building=${encodeURIComponent(id)}` }, `${t("duty.open_alerts")}: ${b.open_alerts}`)),
      h("h2", {}, t("b.devices")),
      table("cards", [t("d.id"), t("d.kind"), t("d.location"), t("d.state"), t("d.values"), t("d.quality"), t("d.last_seen")], devices.map((d) => h("tr", { "data-device": d.id, "data-state": d.state },
        td(t("d.id"), h("button", { type: "button", "data-act": "chart", onclick: () => { chartDevice = d; drawChart(d, "24h"); } }, d.id)),
        td(t("d.kind"), t(`kind.${d.kind}`)), td(t("d.location"), d.location || ""),
        td(t("d.state"), h("span", { class: d.state === "online" ? "good" : d.state === "offline" ? "bad" : "muted" }, t(`st.${d.state}`))),
        td(t("d.values"), valuesText(d.last_values)),
        td(t("d.quality"), (d.quality || []).map((q) => h("span", { class: "tag warn" }, q))),
        td(t("d.last_seen"), d.last_seen ? `${fmtTime(d.last_seen)} (${ago(d.last_seen)})` : ""),
      ))),
      h("h2", {}, t("b.chart")), chartBox,
      h("h2", {}, t("b.coverage")),
      pb ? h("div", { id: "coverage" },
        h("p", {}, pb.complete ? h("span", { class: "good" }, t("b.complete")) : h("span", { class: "bad" }, `${t("b.missing")}: ${[...(pb.missing_kinds || []), ...(pb.unconnected_kinds || [])].map((k) => t(`kind.${k}`)).join("、") || t("b.none")}`)),
        table("cards", [t("d.kind"), t("b.required"), t("b.registered"), t("b.connected"), t("b.online")], Object.entries(pb.kinds || {}).map(([k, c]) => h("tr", {},
          td(t("d.kind"), t(`kind.${k}`)), td(t("b.required"), c.required ? t("yes") : t("no")), td(t("b.registered"), c.registered), td(t("b.connected"), c.connected), td(t("b.online"), c.online))))) : h("p", { class: "muted" }, t("b.none")),
      h("h2", {}, t("b.workorders")),
      workorderTable(wos.filter((w) => w.status !== "closed"), () => view.refresh()),
    );
    if (chartDevice) drawChart(devices.find((d) => d.id === chartDevice.id) || chartDevice, chartBox.dataset.range || "24h");
  };
  async function drawChart(d, range) {
    chartBox.dataset.range = range;
    const hours = { "1h": 1, "6h": 6, "24h": 24, "7d": 168, "30d": 720 }[range];
    const until = new Date(), since = new Date(until - hours * 3600e3);
    const rows = await api("GET", `/api/v1/devices/${encodeURIComponent(d.id)}/readings?since=${since.toISOString()}&until=${until.toISOString()}`);
    const metrics = [...new Set(rows.map((r) => r.metric + (r.channel ? "." + r.channel : "")))].sort();
    const metric = chartBox.dataset.metric && metrics.includes(chartBox.dataset.metric) ? chartBox.dataset.metric : metrics[0];
    chartBox.dataset.metric = metric || "";
    const pts = rows.filter((r) => r.metric + (r.channel ? "." + r.channel : "") === metric)
      .map((r) => ({ x: +new Date(r.ts), y: r.value ?? r.mean, lo: r.min ?? r.value, hi: r.max ?? r.value }));
    // As wide as the page, in CSS pixels, so that text is not stretched.
    const W = Math.max(320, Math.round(chartBox.clientWidth || 900)), H = 260, L = 60, B = 30;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "chart", "data-range": range, "data-points": pts.length, "data-step": rows[0] ? rows[0].step || "raw" : "" });
    if (pts.length) {
      const ys = pts.flatMap((p) => [p.lo, p.hi]).filter((v) => typeof v === "number");
      let y0 = Math.min(...ys), y1 = Math.max(...ys);
      if (y0 === y1) { y0 -= 1; y1 += 1; }
      const X = (x) => L + (x - +since) / (+until - +since) * (W - L - 10), Y = (y) => 10 + (1 - (y - y0) / (y1 - y0)) * (H - B - 10);
      svg.append(s("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, class: "axis" }), s("line", { x1: L, y1: 10, x2: L, y2: H - B, class: "axis" }));
      for (const v of [y0, (y0 + y1) / 2, y1]) svg.append(s("text", { x: 4, y: Y(v) + 4 }, +v.toFixed(3)));
      for (const f of [0, 0.5, 1]) svg.append(s("text", { x: L + f * (W - L - 10), y: H - 8, "text-anchor": ["start", "middle", "end"][f * 2] }, fmtTime(new Date(+since + f * (+until - +since)).toISOString(), hours > 24)));
      if (rows[0] && rows[0].step) svg.append(s("path", { class: "band", d: `M${pts.map((p) => `${X(p.x)},${Y(p.hi)}`).join("L")}L${pts.slice().reverse().map((p) => `${X(p.x)},${Y(p.lo)}`).join("L")}Z` }));
      svg.append(s("path", { class: "line", d: `M${pts.map((p) => `${X(p.x)},${Y(p.y)}`).join("L")}` }));
    } else svg.append(s("text", { x: W / 2 - 80, y: H / 2 }, t("chart.empty")));
    const rsel = h("select", { name: "range", id: "chart-range", onchange: (e) => drawChart(d, e.target.value) }, ["1h", "6h", "24h", "7d", "30d"].map((r) => h("option", { value: r }, t(`r.${r}`))));
    rsel.value = range;
    const msel = h("select", { name: "metric", id: "chart-metric", onchange: (e) => { chartBox.dataset.metric = e.target.value; drawChart(d, range); } }, metrics.map((m) => h("option", { value: m }, m)));
    msel.value = metric || "";
    chartBox.replaceChildren(h("div", { class: "filters" }, h("strong", {}, d.id), h("label", {}, t("range"), rsel), h("label", {}, t("metric"), msel)), svg);
  }
  view.onChange = (ch) => { if ((ch.type === "device" || ch.type === "workorder" || ch.type === "alert") && !view.pending) view.pending = setTimeout(() => { view.pending = null; view.refresh().catch(() => {}); }, 1000); };
  view.cleanup = () => clearTimeout(view.pending);
  return view;
}
function workorderTable(list, done) {
  if (!list.length) return h("p", { class: "muted", id: "workorders-none" }, t("b.none"));
  return table("cards", ["id", t("wo.description"), t("col.status"), t("wo.deadline"), t("col.actions")], list.map((w) => h("tr", { "data-workorder": w.id },
    td("id", h("a", { href: `/workorders/${w.id}` }, w.id)), td(t("wo.description"), w.description),
    td(t("col.status"), t(`wo.status.${w.status}`), w.overdue ? h("span", { class: "bad" }, ` · ${t("wo.overdue")}`) : null),
    td(t("wo.deadline"), fmtTime(w.deadline_at)),
    td(t("col.actions"), w.status === "open" && may.rectify() ? h("button", { type: "button", "data-act": "rectify", onclick: () => dialog(`${t("act.rectify")} · ${w.id}`, [noteField(true)], t("act.rectify"), async (f) => { await api("POST", `/api/v1/workorders/${w.id}/rectify`, { note: f.get("note") }); done(); }) }, t("act.rectify")) : null))));
}
function workorderView(main, id) {
  const view = {};
  view.refresh = async () => {
    const w = await api("GET", `/api/v1/workorders/${encodeURIComponent(id)}`);
    view.building = w.building;
    main.replaceChildren(
      h("h1", {}, t("wo.title"), " ", h("span", { class: "muted" }, w.id)),
      h("div", { class: "card" }, h("dl", { class: "kv" },
        h("dt", {}, t("f.building")), h("dd", {}, h("a", { href: `/buildings/${encodeURIComponent(w.building)}` }, w.building)),
        h("dt", {}, t("wo.description")), h("dd", {}, w.description),
        h("dt", {}, t("col.status")), h("dd", {}, t(`wo.status.${w.status}`), w.overdue ? ` · ${t("wo.overdue")}` : ""),
        h("dt", {}, t("wo.deadline")), h("dd", {}, fmtTime(w.deadline_at)),
        w.alert ? [h("dt", {}, t("alert.title")), h("dd", {}, h("a", { href: `/alerts/${w.alert}` }, w.alert))] : null)),
      workorderTable(w.status === "open" ? [w] : [], () => view.refresh()),
      h("h2", {}, t("alert.history")),
      table("cards", [t("h.at"), t("h.what"), t("h.by"), t("note")], (w.history || []).map((e) => h("tr", {}, td(t("h.at"), fmtTime(e.at)), td(t("h.what"), e.what), td(t("h.by"), e.by || ""), td(t("note"), e.note || "")))),
    );
  };
  view.onChange = (ch) => { if (ch.type === "workorder" && ch.workorder === id) view.refresh(); };
  return view;
}

// ---------------------------------------------------------------------------------------
// Duty page: who is on duty per control room, duty checks, SLA misses, handover summary.
// ---------------------------------------------------------------------------------------
function dutyView(main) {
  const view = {};
  view.refresh = async () => {
    const [duty, checks, open, acked, wos] = await Promise.all([
      api("GET", "/api/v1/duty"),
      api("GET", "/api/v1/duty/checks?limit=10").catch(() => []),
      api("GET", "/api/v1/alerts?status=open&limit=10000"),
      api("GET", "/api/v1/alerts?status=acknowledged&limit=10000"),
      api("GET", "/api/v1/workorders?limit=1000").catch(() => []),
    ]);
    const rooms = duty.control_rooms || [];
    if (rooms[0] && rooms[0].control_room.tz) tz = rooms[0].control_room.tz;
    const shiftStart = rooms.map((r) => r.shift && r.shift.starts_at).filter(Boolean).sort()[0];
    const since = shiftStart || new Date(Date.now() - 12 * 3600e3).toISOString();
    const recent = await api("GET", `/api/v1/alerts?since=${encodeURIComponent(since)}&limit=10000`);
    const missed = recent.filter((a) => a.sla_missed_at && a.sla_missed_at >= since);
    const openAll = [...open, ...acked];
    const openWo = wos.filter((w) => w.status !== "closed");
    const person = (p) => h("li", {}, p.name, p.phone ? h("span", { class: "muted" }, ` ${p.phone}`) : null);
    main.replaceChildren(
      h("h1", {}, t("duty.title")),
      h("div", { class: "grid", id: "duty-rooms" }, rooms.map((r) => h("div", { class: "card", "data-room": r.control_room.id },
        h("h2", {}, r.control_room.name || r.control_room.id),
        h("dl", { class: "kv" },
          h("dt", {}, t("duty.shift")), h("dd", {}, r.shift ? `${r.shift.name} ${r.shift.start}–${r.shift.end}` : "—"),
          h("dt", {}, t("duty.operators")), h("dd", {}, r.unstaffed ? h("span", { class: "bad" }, t("duty.unstaffed")) : h("ul", {}, r.operators.map(person))),
          h("dt", {}, t("duty.next")), h("dd", {}, r.next_change_at ? `${fmtTime(r.next_change_at)} ` : "", r.next && r.next.operators ? r.next.operators.map((p) => p.name).join("、") : "")),
        may.handle() ? h("button", { type: "button", "data-act": "check", onclick: async () => { try { await api("POST", "/api/v1/duty/checks", { control_room: r.control_room.id }); view.refresh(); } catch (e) { toast(e.message); } } }, t("act.check")) : null))),
      h("h2", {}, t("duty.checks")),
      table("cards", [t("chk.created"), "", t("chk.by"), t("chk.status"), t("chk.answered"), t("chk.unanswered")], checks.map((c) => h("tr", { "data-check": c.id },
        td(t("chk.created"), fmtTime(c.created_at)), td("", c.control_room), td(t("chk.by"), c.requested_by),
        td(t("chk.status"), h("span", { class: c.status === "unanswered" ? "bad" : c.status === "answered" ? "good" : "muted" }, t({ waiting: "chk.waiting", answered: "chk.answered_all", unanswered: "chk.unanswered_some" }[c.status] || c.status))),
        td(t("chk.answered"), c.answered), td(t("chk.unanswered"), c.unanswered)))),
      h("h2", {}, t("duty.sla"), ` (${missed.length})`),
      missed.length ? h("ul", { id: "sla-missed" }, missed.map((a) => h("li", {}, sev(a.severity), " ", h("a", { href: `/alerts/${a.id}` }, a.id), ` ${ruleName(a.rule)} · ${a.building_name || a.building} · ${fmtTime(a.sla_missed_at)}`))) : h("p", { class: "muted" }, t("b.none")),
      h("h2", {}, t("duty.handover")),
      h("div", { class: "card", id: "handover" },
        h("p", {}, `${t("duty.open_alerts")}: ${openAll.length} (`, SEVERITIES.map((v) => `${t(`sev.${v}`)} ${openAll.filter((a) => a.severity === v).length}`).join(" / "), `) · ${t("duty.open_wo")}: ${openWo.length}`),
        h("ul", {}, openAll.sort((x, y) => SEV_RANK[x.severity] - SEV_RANK[y.severity]).slice(0, 50).map((a) => h("li", {}, sev(a.severity), " ", h("a", { href: `/alerts/${a.id}` }, a.id), ` ${ruleName(a.rule)} · ${a.building_name || a.building} · ${t(`st.${a.status}`)} · ${fmtTime(a.started_at)}`))),
        workorderTable(openWo, () => view.refresh())),
    );
  };
  view.onChange = (ch) => { if (["alert", "workorder", "duty_check", "command"].includes(ch.type) && !view.pending) view.pending = setTimeout(() => { view.pending = null; view.refresh().catch(() => {}); }, 1000); };
  view.cleanup = () => clearTimeout(view.pending);
  return view;
}

// ---------------------------------------------------------------------------------------
// Admin: accounts and the audit trail.
// ---------------------------------------------------------------------------------------
function adminView(main) {
  const view = {};
  view.refresh = async () => {
    const [users, audit, silences] = await Promise.all([api("GET", "/api/v1/users"), api("GET", "/api/v1/audit?limit=200"), api("GET", "/api/v1/silences?state=current")]);
    const when = (x) => x.every ? `${x.every.days.join(",")} ${x.every.from}–${x.every.to}${x.ends_at ? " · → " + fmtTime(x.ends_at) : ""}` : `${fmtTime(x.starts_at)} → ${fmtTime(x.ends_at)}`;
    const newSilence = () => dialog(t("sil.new"), [
      h("label", {}, t("sil.building"), h("input", { name: "building", required: true })),
      h("label", {}, t("sil.rule"), h("input", { name: "rule" })),
      h("label", {}, t("sil.hours"), h("input", { name: "hours", type: "number", min: "0.1", step: "0.1", value: "2", required: true })),
      h("label", {}, t("sil.reason"), h("textarea", { name: "reason", rows: 2, required: true })),
      h("label", {}, h("input", { type: "checkbox", name: "notify_on_exit", checked: true, style: "display:inline;width:auto" }), " ", t("sil.notify")),
    ], t("act.save"), async (f) => {
      const matchers = { building: f.get("building").trim() };
      if (f.get("rule").trim()) matchers.rule = f.get("rule").trim();
      const ends = new Date(Date.now() + Number(f.get("hours")) * 3600e3).toISOString();
      await api("POST", "/api/v1/silences", { matchers, ends_at: ends, reason: f.get("reason"), notify_on_exit: !!f.get("notify_on_exit") });
      view.refresh();
    });
    main.replaceChildren(
      h("h1", {}, t("nav.admin")),
      h("h2", {}, t("admin.silences")),
      h("p", {}, h("button", { type: "button", "data-act": "new-silence", onclick: newSilence }, t("sil.new"))),
      table("cards", ["id", t("sil.matchers"), t("sil.when"), t("sil.reason"), t("sil.by"), t("sil.held"), t("sil.state"), ""], silences.map((x) => h("tr", { "data-silence": x.id, "data-state": x.state },
        td("id", x.id), td(t("sil.matchers"), Object.entries(x.matchers).map(([k, v]) => `${k}=${v}`).join(" ")), td(t("sil.when"), when(x)),
        td(t("sil.reason"), x.reason), td(t("sil.by"), x.by), td(t("sil.held"), String(x.held)), td(t("sil.state"), t(`sil.st.${x.state}`)),
        td("", h("button", { type: "button", "data-act": "expire", onclick: async () => { await api("POST", `/api/v1/silences/${x.id}/expire`, {}); view.refresh(); } }, t("sil.expire")))))),
      h("h2", {}, t("admin.users")),
      table("cards", [t("u.name"), t("u.role"), t("u.buildings"), t("u.disabled")], users.map((u) => h("tr", { "data-user": u.user },
        td(t("u.name"), `${u.display} (${u.user})`), td(t("u.role"), t(`role.${u.role}`)), td(t("u.buildings"), (u.buildings || []).join(", ") || t("all_buildings")), td(t("u.disabled"), u.disabled ? t("yes") : t("no"))))),
      h("p", { class: "muted" }, "firewatch user add NAME --role operator|manager|admin [--building ID]"),
      h("h2", {}, t("admin.audit")),
      table("cards", [t("a.at"), t("a.actor"), t("a.action"), t("a.target"), t("a.status")], audit.map((e) => h("tr", { "data-audit": e.id },
        td(t("a.at"), fmtTime(e.at)), td(t("a.actor"), `${e.actor} (${e.via})`), td(t("a.action"), e.action), td(t("a.target"), e.target), td(t("a.status"), h("span", { class: e.status >= 400 ? "bad" : "" }, e.status))))),
    );
  };
  return view;
}

// ---------------------------------------------------------------------------------------
// Login, language, start.
// ---------------------------------------------------------------------------------------
function showLogin(msg) {
  session.me = null;
  if (feed.es) { feed.es.close(); feed.es = null; }
  setAlarm(false);
  $("#nav").hidden = true; $("#who").hidden = true;
  const form = h("form", { class: "login card", id: "login" },
    h("h1", {}, t("login.title")),
    h("label", {}, t("login.user"), h("input", { name: "user", autocomplete: "username", required: true })),
    h("label", {}, t("login.password"), h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit", class: "primary" }, t("login.submit")),
    h("p", { class: "bad", id: "login-error", role: "alert" }, msg || ""));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    audioCtx(); // a click: sound may play from now on
    const f = new FormData(form);
    try {
      const r = await api("POST", "/api/v1/login", { user: f.get("user"), password: f.get("password") });
      session.csrf = r.csrf;
      await start();
    } catch (e) { $("#login-error").textContent = `${t("login.failed")}: ${e.message}`; }
  });
  $("#view").replaceChildren(form);
  form.elements.user.focus();
}
function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  $("#lang").textContent = lang === "zh" ? "English" : "中文";
  setConn(feed.state);
}
$("#lang").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("fw.lang", lang);
  applyLang();
  if (session.me) route(); else showLogin();
});
$("#sound").addEventListener("click", () => { const c = audioCtx(); if (c) c.resume().then(() => { $("#sound").hidden = true; }); });
$("#logout").addEventListener("click", async () => { try { await api("POST", "/api/v1/logout", {}); } catch (e) { /* gone anyway */ } session.csrf = null; showLogin(); });
document.addEventListener("pointerdown", () => { if (alarm.ctx && alarm.ctx.state === "suspended") alarm.ctx.resume().catch(() => {}); });

async function start() {
  try {
    const me = await api("GET", "/api/v1/me");
    session.me = me;
    if (me.tz) tz = me.tz; // the control room's zone (notify.tz)
    if (me.csrf) session.csrf = me.csrf;
  } catch (e) { if (e.status !== 401) $("#view").replaceChildren(h("p", { class: "bad" }, e.message)); return; }
  try { rulesWords = (await api("GET", "/ui/words.json")).rules || {}; } catch (e) { rulesWords = {}; }
  try {
    const duty = await api("GET", "/api/v1/duty");
    const room = (duty.control_rooms || [])[0];
    if (room && room.control_room.tz) tz = room.control_room.tz;
  } catch (e) { /* managers: the default zone */ }
  $("#nav").hidden = false; $("#who").hidden = false;
  $("#nav-admin").hidden = !may.admin();
  $("#nav-duty").hidden = !may.handle();
  $("#who-name").textContent = `${session.me.user} · ${t(`role.${session.me.role}`)}`;
  if (location.pathname === "/login" || location.pathname === "/") history.replaceState(null, "", "/board");
  await route();
}
applyLang();
start();
