"""Character-level LSTM language model: the Knet tutorial's recurrent network.

Run it with ``knet-st run charlm`` (The Song of Hiawatha) or ``knet-st run
charlm --data shakespeare``, or ``python examples/charlm.py``; then sample
from a saved model with ``knet-st run charlm --load m.npz --generate 1000``.

Each character is embedded, passed through one or more LSTM layers whose
four gates come from one matrix product (the tutorial's fused style), and
turned into scores over the vocabulary.  ``s`` holds the hidden and cell
arrays of every layer and is modified in place, as in the tutorial:
``s[i], s[i + 1] = lstm(...)``.  The text is cut into ``batchsize``
streams read in parallel (``sequence[t]`` holds the t-th character of every
stream); training runs backpropagation through time over subsequences of
``seqlength`` characters, carrying the state from one to the next.

Layout: features x instances, as in the other examples: the hidden state is
hidden x batchsize, an LSTM weight is 4*hidden x (input + hidden), and the
embedding ``w[-3]`` is embed x vocabulary, read by column (``w[-3][:, x]``
equals the tutorial's one-hot product).  Defaults are those of Knet's
``charlm.jl``: embedding and hidden size 256, batches of 128, subsequences
of 100, SGD with lr 4.0 on gradients clipped to norm 3.0, weights
``0.3*randn``, forget gate biases 1.

The tutorial's Julia::

    function predict(w, s, x)
        x = x * w[end-2]
        for i = 1:2:length(s)
            (s[i],s[i+1]) = lstm(w[i],w[i+1],s[i],s[i+1],x)
            x = s[i]
        end
        return x * w[end-1] .+ w[end]
    end
"""

import os
import sys
import time

import numpy as np

import knet_st as kt
from knet_st.examples import _common
from knet_st.runtime.backend import get_array_module


def lstm(weight, bias, hidden, cell, input):
    gates = weight @ np.concatenate([input, hidden]) + bias
    h = hidden.shape[0]
    forget = kt.sigm(gates[:h])
    ingate = kt.sigm(gates[h:2 * h])
    outgate = kt.sigm(gates[2 * h:3 * h])
    change = np.tanh(gates[3 * h:])
    cell = cell * forget + ingate * change
    hidden = outgate * np.tanh(cell)
    return hidden, cell


def predict(w, s, x):
    x = w[-3][:, x]                 # embedding: the columns of the characters x
    for i in range(0, len(s), 2):
        s[i], s[i + 1] = lstm(w[i], w[i + 1], s[i], s[i + 1], x)
        x = s[i]
    return w[-2] @ x + w[-1]


def loss(w, s, sequence, r):
    """The mean cross-entropy of predicting ``sequence[t + 1]`` from the
    characters up to ``sequence[t]``, for ``t`` in the range ``r``."""
    total = 0.0
    count = 0
    input = sequence[r[0]]
    for t in r:
        ypred = predict(w, s, input)
        ygold = sequence[t + 1]
        total += kt.nll(ypred, ygold, average=False)    # -sum(ygold .* logp(ypred))
        count += len(ygold)
        input = ygold
    return total / count


# kt.grad(loss) gives dw; value_and_grad also gives the loss, for the progress bar.
lossgradient = kt.value_and_grad(loss)


def train(w, s, sequence, opts, seqlength=100, gclip=0.0, progress=None, steps=None):
    """One pass of truncated BPTT over ``sequence``: a gradient step for each
    subsequence of ``seqlength`` characters; ``s`` carries the state over."""
    for n, t in enumerate(range(0, len(sequence) - 1, seqlength)):
        if steps is not None and n >= steps:
            break
        r = range(t, min(t + seqlength, len(sequence) - 1))
        value, dw = lossgradient(w, s, sequence, r)
        kt.distributed.update(w, dw, opts, gclip=gclip)    # mean over processes
        if progress is not None:
            progress.update(value)
    return w


def generate(w, s, chars, nchar, rng=None, start="\n"):
    """``nchar`` characters sampled one at a time from the model's
    predictions, each fed back as the next input (the tutorial's
    ``generate``).  ``chars`` is the vocabulary, a string; ``s`` a state of
    batch size 1."""
    rng = np.random.default_rng() if rng is None else rng
    xp = get_array_module(w[0])
    index = chars.find(start) if start in chars else 0
    out = []
    for _ in range(nchar):
        ypred = predict(w, s, xp.asarray([index]))
        p = np.asarray(kt.to_cpu(kt.softmax(ypred, axis=0)), dtype=np.float64)[:, 0]
        index = int(rng.choice(len(p), p=p / p.sum()))
        out.append(chars[index])
    return "".join(out)


def init_weights(vocab, hidden, embed, winit):
    """``winit*randn`` weights, zero biases but 1 for the forget gates
    (Knet's ``charlm.jl``): ``[W1, b1, W2, b2, ..., embedding, W, b]``."""
    w = []
    n_in = embed
    for h in hidden:
        bias = kt.zeros(4 * h, 1)
        bias[:h] = 1.0                              # forget gate bias
        w += [kt.gaussian(4 * h, n_in + h, std=winit), bias]
        n_in = h
    w += [kt.gaussian(embed, vocab, std=winit),     # embedding
          kt.gaussian(vocab, hidden[-1], std=winit), kt.zeros(vocab, 1)]
    return w


def init_state(hidden, batchsize, atype=None):
    """Zero hidden and cell arrays for each layer: ``[h1, c1, h2, c2, ...]``."""
    s = []
    for h in hidden:
        s += [kt.zeros(h, batchsize), kt.zeros(h, batchsize)]
    return s if atype is None else atype(s)


def minibatch(text, chars, batchsize):
    """The text as ``batchsize`` parallel streams: a (T, batchsize) array of
    character indices whose row ``t`` holds the t-th character of each
    stream (Knet's ``minibatch`` with indices for one-hot rows)."""
    index = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
    nbatch = len(ids) // batchsize
    return ids[:nbatch * batchsize].reshape(batchsize, nbatch).T.copy()


def read_text(name):
    """A text of ``kt.datasets`` by name, or a UTF-8 file; line ends as ``\\n``."""
    if name in kt.datasets.TEXTS:
        text = kt.datasets.text(name)
    elif os.path.isfile(name):
        try:
            with open(name, encoding="utf-8-sig") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise _common.ExampleError(f"{name}: not UTF-8 text: {e}") from None
    else:
        raise _common.ExampleError(
            f"--data {name!r}: not one of {', '.join(sorted(kt.datasets.TEXTS))} "
            f"and not a file")
    return text.replace("\r\n", "\n")


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

def build_parser(prog=None):
    p = _common.parser(prog, __doc__, epochs=1, batchsize=128, lr=4.0, shuffle=None)
    p.add_argument("--data", default="hiawatha", metavar="TEXT",
                   help="hiawatha (default), shakespeare, or a UTF-8 text file")
    p.add_argument("--hidden", type=_common.positive_int, nargs="+", default=[256],
                   metavar="N", help="sizes of the LSTM layers (default 256)")
    p.add_argument("--embed", type=_common.positive_int, default=256, metavar="N",
                   help="size of the character embedding (default 256)")
    p.add_argument("--seqlength", type=_common.positive_int, default=100, metavar="N",
                   help="characters per BPTT subsequence (default 100)")
    p.add_argument("--gclip", type=_common.nonnegative_float, default=3.0,
                   help="clip the gradient norm to this (default 3.0; 0: off)")
    p.add_argument("--winit", type=_common.positive_float, default=0.3,
                   help="initial weights are winit*randn (default 0.3)")
    p.add_argument("--dev", type=float, default=0.05, metavar="FRACTION",
                   help="hold out the end of the text for a dev loss "
                        "(default 0.05; 0: none)")
    p.add_argument("--ntrain", type=_common.positive_int, default=None, metavar="N",
                   help="use only the first N characters of the text")
    p.add_argument("--generate", type=_common.nonnegative_int, default=0, metavar="N",
                   help="after training (or loading), print N sampled characters")
    return p


def run(args):
    """Trains, reports and generates; returns a dict with the ``history`` of
    reported tuples, the per-step ``losses``, the weights ``w``, the
    vocabulary ``chars`` and the ``generated`` text."""
    if not 0.0 <= args.dev < 1.0:
        raise _common.ExampleError(f"--dev must be in [0, 1), got {args.dev}")
    atype = args.atype
    saved = _common.start(args, "charlm")
    if saved:
        w, chars = saved["w"], saved["chars"]
        hidden = [w[i].shape[0] // 4 for i in range(0, len(w) - 3, 2)]
    else:
        w = chars = None
        hidden = args.hidden

    history, losses, generated = [], [], None
    need_data = args.epochs > 0 or not args.generate
    if need_data:
        text = read_text(args.data)[:args.ntrain]
        if chars is None:
            chars = "".join(sorted(set(text)))
        else:
            unknown = sorted(set(text) - set(chars))
            if unknown:
                raise _common.ExampleError(
                    f"the text has characters the model of {args.load} does not "
                    f"know: {''.join(unknown[:20])!r}")
        ndev = int(len(text) * args.dev)
        trn_text, dev_text = text[:len(text) - ndev], text[len(text) - ndev:]
        sequence = minibatch(trn_text, chars, args.batchsize)
        sequence = kt.distributed.shard(sequence, axis=1)   # this process's streams
        if len(sequence) < 2:
            raise _common.ExampleError(
                f"{len(trn_text)} characters are too few for --batchsize "
                f"{args.batchsize}")
        dbatch = max(1, min(args.batchsize, len(dev_text) // 2))
        dev = minibatch(dev_text, chars, dbatch) if ndev else None
        if dev is not None and len(dev) < 2:
            dev = None
        sequence, dev = atype([sequence, dev])
    if w is None:
        w = init_weights(len(chars), hidden, args.embed, args.winit)
    w = atype(w)
    opts = _common.make_optimizers(w, args, saved)

    def dev_loss():
        n = len(dev) - 1 if args.steps is None else min(len(dev) - 1,
                                                        args.steps * args.seqlength)
        return loss(w, init_state(hidden, dev.shape[1], atype), dev, range(n))

    if need_data:
        if kt.distributed.is_root():
            print(f"{len(text)} characters, {len(chars)} distinct; "
                  f"{len(sequence)} steps x {args.batchsize} streams for training",
                  file=sys.stderr)
        if dev is not None:
            history.append(_common.report("epoch", args.first_epoch - 1, "dev",
                                          dev_loss()))
    seconds = 0.0
    enabled = _common.progress_enabled(args.progress)
    for epoch in range(args.first_epoch, args.epochs + 1):
        nsub = -(-(len(sequence) - 1) // args.seqlength)
        if args.steps is not None:
            nsub = min(nsub, args.steps)
        bar = _common.Progress(nsub, f"epoch {epoch}", enabled, unit="seq", epoch=epoch)
        s = init_state(hidden, sequence.shape[1], atype)
        t0 = time.perf_counter()
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                train(w, s, sequence, opts, args.seqlength, args.gclip, bar, args.steps)
            epoch_losses = bar.losses       # (waits for the GPU)
        finally:
            bar.close()
        seconds += time.perf_counter() - t0
        losses += epoch_losses
        trn = sum(epoch_losses) / len(epoch_losses)
        trn = kt.distributed.allreduce_mean([trn])[0]       # over all streams
        dev_items = ("dev", dev_loss()) if dev is not None else ()
        history.append(_common.report("epoch", epoch, "trn", trn, *dev_items,
                                      "time", time.perf_counter() - t0))
        if args.save:
            _common.save(args.save, "charlm", w, opts, epoch, args, chars=chars)
    if args.epochs >= args.first_epoch:
        _common.done(f"charlm: {args.epochs - args.first_epoch + 1} epochs", seconds)
    if args.save and args.epochs < args.first_epoch:    # nothing trained: --load
        _common.save(args.save, "charlm", w, chars=chars)
    if args.generate:
        rng = np.random.default_rng(None if args.seed < 0 else args.seed)
        generated = generate(w, init_state(hidden, 1, atype), chars, args.generate, rng)
        print(generated)
    if args.plot and losses:
        panels = [("loss (nats per character)", "subsequence",
                   _common.step_curve(losses))]
        epochs = [h[1] for h in history if "dev" in h]
        if epochs:
            panels.append(("loss (nats per character)", "epoch",
                           {"dev": (epochs, [h[h.index("dev") + 1] for h in history
                                             if "dev" in h])}))
        _common.plot(args.plot, "charlm", panels)
    return {"history": history, "losses": losses, "w": w, "chars": chars,
            "generated": generated}


def main(argv=None, prog=None):
    """``knet-st run charlm [options]``; ``--help`` lists the options.
    Returns what :func:`run` returns."""
    return _common.run_main(build_parser, run, argv, prog)


if __name__ == "__main__":
    main()
