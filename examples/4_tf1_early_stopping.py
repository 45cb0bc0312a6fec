"""Workflow 4: TF1 ``Saver`` with iteration-based early stopping (MNIST CNN tutorial).

A ``tf.compat.v1`` graph (``layer_conv1``, ``layer_fc1``, ``layer_fc2`` built with
``variable_scope`` + ``get_variable``, so it runs on every TF 2.x, Keras 3 included, without
``tf.layers``), ``AdamOptimizer(1e-4)`` and a session. Every ``evaluate_every`` iterations the
validation accuracy is computed; training stops after ``require_improvement`` iterations
without improvement and the best variables are restored.

What ckptcompat replaces: the ``best_validation_accuracy`` / ``last_improvement`` globals
(lost on restart), ``saver.save(sess, "checkpoints/best_validation")``, and the final
"re-initialise + ``saver.restore``": ``IterationEarlyStopping`` keeps the counters in every
checkpoint, ``resume`` continues a killed run at its last evaluation, ``restore_best`` brings
the best variables back. The checkpoints are TF1 bundles that ``tf.train.Saver`` reads.
"""

from __future__ import annotations

import _tiny
import numpy as np
import tensorflow as tf

from ckptcompat.tf1.early_stopping import IterationEarlyStopping

tf1 = tf.compat.v1


def dense(h, name, n_out, relu=True):
    with tf1.variable_scope(name):
        k = tf1.get_variable("kernel", [h.shape[-1], n_out], initializer=tf1.glorot_uniform_initializer())
        b = tf1.get_variable("bias", [n_out], initializer=tf1.zeros_initializer())
    out = tf.matmul(h, k) + b
    return tf.nn.relu(out) if relu else out


def build(size, lr):
    """The tutorial's graph; returns (graph, placeholders x/y, train op, accuracy)."""
    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, size, size, 3], name="x")
        y = tf1.placeholder(tf.int64, [None], name="y")
        with tf1.variable_scope("layer_conv1"):
            k = tf1.get_variable("kernel", [3, 3, 3, 8], initializer=tf1.glorot_uniform_initializer())
            b = tf1.get_variable("bias", [8], initializer=tf1.zeros_initializer())
        h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, k, 1, "SAME") + b), 2, 2, "SAME")
        h = dense(tf.reshape(h, [-1, int(np.prod(h.shape[1:]))]), "layer_fc1", 32)
        logits = dense(h, "layer_fc2", 3, relu=False)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        step = tf1.train.get_or_create_global_step()
        train = tf1.train.AdamOptimizer(lr).minimize(loss, global_step=step)
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
        init = tf1.global_variables_initializer()
    return graph, x, y, train, acc, init


def main() -> None:
    p = _tiny.parser(__doc__)
    p.add_argument("--iterations", type=int, default=None, help="at most this many iterations")
    args = p.parse_args()
    size, n, batch, every, patience, most, lr = ((12, 192, 16, 10, 40, 150, 3e-3) if args.tiny
                                                 else (28, 5000, 64, 100, 1000, 10000, 1e-4))
    most = args.iterations or most
    x_train, y_train = _tiny.images(n, 1, size)
    x_val, y_val = _tiny.images(n // 4, 2, size)
    graph, x, y, train, acc, init = build(size, lr)
    config = tf1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    with graph.as_default(), tf1.Session(graph=graph, config=config) as sess:
        sess.run(init)
        es = IterationEarlyStopping(evaluate_every=every, patience=patience, mode="max",
                                    store=args.workdir / "checkpoints")
        step = start = es.resume(sess)             # 0 on a fresh start; counters come back too
        print(f"starting at iteration {start}")
        while step < most and not es.should_stop(step):
            idx = np.random.default_rng([1, step]).choice(n, batch, replace=False)  # replayable order
            sess.run(train, {x: x_train[idx], y: y_train[idx]})
            step += 1
            if es.should_evaluate(step):
                value = float(sess.run(acc, {x: x_val, y: y_val}))
                improved = es.update(step, value, sess)
                print(f"iteration {step}: validation accuracy {value:.3f}{' *' if improved else ''}")
        best_step = es.restore_best(sess)          # replaces re-init + saver.restore(best_validation)
        best_acc = float(sess.run(acc, {x: x_val, y: y_val}))
        es.close()
    print(f"stopped at iteration {step}; best {best_acc:.3f} at iteration {best_step}")
    _tiny.write_summary(args.workdir, started_at=start, stopped_at=step, best_step=best_step,
                        best=es.best, restored_accuracy=best_acc)


if __name__ == "__main__":
    main()
