"""Fine-tuning DepthART on a robot's own RGB-D recordings (`depthart finetune`).

frames   read the bags (rosio, the replay's stamp matching), decode and count every frame,
         map the sensor depth onto the image, split by time into training and held-out blocks
prepare  held-out frames at full size, training frames at the model resolution with the
         sensor's holes filled from their nearest valid neighbour
run      the whole command: checks, the run folder, the Trainer (DepthART objective), the
         before/after evaluation and the report
report   report.md, report.json and the figure (RGB | sensor depth | before | after)
"""
