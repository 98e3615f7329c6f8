"""Learning layer (torch): the VAND recurrent cell and its baselines, the policy, training and ONNX export.

    config.py      TrainConfig: one validated dataclass, saved with every checkpoint
    cells.py       the hand-written GRU/LSTM layer with VAND / NRNN / Gal on its state; draws are inputs
    policy.py      Policy (init_state, forward, step), DrawMaker (training and execution draws)
    train.py       truncated BPTT with carried state, early stopping, TensorBoard, plots (`vand-ros train`)
    checkpoint.py  Checkpoint: config, layout, normalisation, dataset summary, weights
    export.py      the single-step ONNX graph and its model card (`vand-ros export`)
    plots.py       run-directory plots;  synthetic.py  periodic/sequential toy demonstrations
    bench.py       `vand-ros bench train`

The robot side reads the card with vand_ros.runtime.card (numpy + json) and never imports this package.
"""
