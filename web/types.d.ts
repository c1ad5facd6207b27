// cytoscape-dagre ships no declarations; it is a cytoscape extension registered with cytoscape.use.
declare module 'cytoscape-dagre' {
  const ext: cytoscape.Ext;
  export default ext;
}
