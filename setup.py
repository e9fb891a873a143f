"""Installs jal, deep active learning in JAX."""

import setuptools

setuptools.setup(
    name='jal',
    version='0.1.0',
    description='Deep active learning in JAX.',
    packages=setuptools.find_packages(include=['jal', 'jal.*']),
    python_requires='>=3.10',
    install_requires=[
        'jax>=0.7',
        'flax>=0.12',
        'optax',
        'chex',
        'numpy',
        'absl-py',
        'ml_collections',
        'scikit-learn',
        'scipy',
        'matplotlib',
        'Pillow',
    ],
    extras_require={
        'test': ['pytest', 'pytest-xdist', 'nbclient', 'nbformat',
                 'ipykernel'],
        'tfds': ['tensorflow-datasets', 'importlib_resources', 'pillow'],
        'notebook': ['ipywidgets', 'pillow'],
    },
)
