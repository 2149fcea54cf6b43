console.log("hello from main", process.argv.slice(2))
