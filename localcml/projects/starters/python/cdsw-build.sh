#!/bin/bash
# Run by a model build from the project root: install what the model function imports.
pip3 install -r requirements.txt
