/** What the hello-world program prints: the story of the run that just happened. */
export const GREETING = `
Hello from Berth!

This message means your installation works. What just happened:
 1. The berth client sent your command to the berthd daemon over its API.
 2. berthd looked for the "hello-world" image in its image cache.
 3. If the image was missing, berthd pulled it from the hub (a registry)
    into the cache; a second run skips this step.
 4. berthd made a container from the image: its own namespaces, control
    groups, and an overlay snapshot of the image as its root file system.
 5. It started this program in the container and streamed what it wrote
    back to your terminal.

Next, try an interactive shell in a container:
 $ berth run -it busybox sh

The README says more.
`;
