// Progress for long jobs: on a terminal one line rewritten in place (with elapsed seconds), and
// plain lines otherwise (logs, CI), so captured output stays readable.

export interface Progress {
  update(text: string): void;
  done(text: string): void;
}

export function progress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = Boolean(stream.isTTY);
  const t0 = Date.now();
  let current = '';
  const draw = () => stream.write(`\r\x1b[2K${current} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  const timer = tty ? setInterval(draw, 1000) : undefined;
  timer?.unref();
  return {
    update(text) {
      current = text;
      if (tty) draw();
      else stream.write(`${text}\n`);
    },
    done(text) {
      if (timer) clearInterval(timer);
      stream.write(tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
    },
  };
}
