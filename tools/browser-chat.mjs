// The chat page in Debian's Chromium, driven through playwright-core.
//   node tools/browser-chat.mjs chat ROOM_PAGE_URL SCREENSHOT_PATH
//     two pages in one room: a message typed in one appears in the other, and markup in a
//     message shows as literal text;
//   node tools/browser-chat.mjs history ROOM_PAGE_URL SCREENSHOT_PATH
//     a room that keeps history: a page that joins later shows what was said before it came,
//     and both pages show both names online;
//   node tools/browser-chat.mjs reconnect ROOM_PAGE_URL SCREENSHOT_PATH
//     against a gateway with a short idle timeout: the server closes the page's connection, the
//     page says so and reconnects by itself, and the notice goes away.
import { chromium } from "playwright-core";

const [mode, url, screenshot] = process.argv.slice(2);
if (!["chat", "history", "reconnect"].includes(mode) || !url || !screenshot) {
  console.error("usage: node tools/browser-chat.mjs chat|history|reconnect ROOM_PAGE_URL SCREENSHOT_PATH");
  process.exit(2);
}
const XSS = "<img src=x onerror=alert(1)>";
const fail = (message) => {
  console.error(`browser test failed: ${message}`);
  process.exitCode = 1;
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const dialogs = [];
const open = async (name) => {
  const page = await (await browser.newContext()).newPage();
  page.on("dialog", async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  await page.goto(url);
  await page.waitForSelector("body[data-state=open]", { timeout: 10000 });
  await page.fill("#name", name);
  await page.dispatchEvent("#name", "change");
  // The rename reconnects: wait for the new connection, not the first one.
  await page.waitForFunction(
    (who) => document.body.dataset.state === "open" && localStorage.getItem("chatroom-name") === who,
    name,
    { timeout: 10000 },
  );
  return page;
};
try {
  if (mode === "reconnect") {
    await reconnects(await open("ada"));
  } else if (mode === "history") {
    await remembers(await open("ada"));
  } else {
    await chats(await open("ada"), await open("bob"));
  }
} finally {
  await browser.close();
}

async function reconnects(page) {
  // The idle timeout closes the connection with 1001: the page must say so, not go quiet.
  await page.waitForFunction(
    () => document.body.dataset.state !== "open" && document.querySelector("#notice.shown"),
    null,
    { timeout: 15000 },
  );
  const shown = await page.$eval("#notice", (el) => el.textContent);
  if (!/^Disconnected \(code 1001\)\. Reconnecting in \d+\.\d s…$/.test(shown)) {
    fail(`unexpected notice: ${JSON.stringify(shown)}`);
  }
  if (!(await page.$eval("#send", (el) => el.disabled))) fail("Send stays enabled while disconnected");
  await page.screenshot({ path: screenshot, fullPage: true });
  // ...and come back by itself, with the notice gone.
  await page.waitForFunction(
    () => document.body.dataset.state === "open" && !document.querySelector("#notice.shown"),
    null,
    { timeout: 15000 },
  );
  if (!process.exitCode) console.log(`ok: "${shown}" shown, then reconnected; screenshot at ${screenshot}`);
}

async function remembers(ada) {
  await ada.fill("#text", "Said before you came");
  await ada.click("#send");
  await ada.waitForFunction(
    () => document.querySelector("#messages li:last-child .text")?.textContent === "Said before you came",
    null,
    { timeout: 10000 },
  );
  const grace = await open("grace");
  await grace.waitForFunction(
    () => [...document.querySelectorAll("#messages li.earlier .text")].some((el) => el.textContent === "Said before you came"),
    null,
    { timeout: 10000 },
  );
  const from = await grace.$eval("#messages li.earlier .from", (el) => el.textContent);
  if (from !== "ada") fail(`the earlier message shows as from ${from}, not ada`);
  for (const [who, page] of [["grace", grace], ["ada", ada]]) {
    try {
      await page.waitForFunction(
        () => document.querySelector("#online").textContent === "Online: ada, grace",
        null,
        { timeout: 10000 },
      );
    } catch {
      fail(`${who}'s page shows ${JSON.stringify(await page.$eval("#online", (el) => el.textContent))}`);
    }
  }
  const joined = await ada.$$eval("#messages li.presence", (els) => els.map((el) => el.textContent));
  if (!joined.includes("grace joined")) fail(`ada's page never said grace joined: ${JSON.stringify(joined)}`);
  await grace.screenshot({ path: screenshot, fullPage: true });
  if (!process.exitCode) console.log(`ok: the later page shows the earlier message and both names online; screenshot at ${screenshot}`);
}

async function chats(ada, bob) {

  await ada.fill("#text", "Hello from the browser");
  await ada.click("#send");
  await bob.waitForFunction(
    () => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.includes("Hello from the browser")),
    null,
    { timeout: 10000 },
  );
  const from = await bob.$eval("#messages li:last-child .from", (el) => el.textContent);
  if (from !== "ada") fail(`expected the message from ada, saw ${from}`);

  await bob.fill("#text", XSS);
  await bob.press("#text", "Enter");
  await ada.waitForFunction(
    (xss) => [...document.querySelectorAll("#messages li .text")].some((el) => el.textContent === xss),
    XSS,
    { timeout: 10000 },
  );
  await ada.waitForTimeout(300);
  const images = await ada.$$eval("#messages img", (els) => els.length);
  if (images !== 0) fail(`the message was rendered as HTML (${images} <img> element(s))`);
  if (dialogs.length !== 0) fail(`a script ran: ${dialogs.join(", ")}`);

  await ada.screenshot({ path: screenshot, fullPage: true });
  if (!process.exitCode) console.log(`ok: message delivered between pages, markup shown as text; screenshot at ${screenshot}`);
}
